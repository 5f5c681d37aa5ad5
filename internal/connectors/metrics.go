package connectors

import (
	"strconv"

	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per connector instance, labelled kind (source|sink),
// connector (tenant/ns/name), type and instance.
type metrics struct {
	in, out, errors, restarts, checkpoints *prometheus.CounterVec
	lastReceived                           *prometheus.GaugeVec
}

var labels = []string{"kind", "connector", "type", "instance"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_connector_records_in_total",
			Help: "Records a connector took in: read from the external system (source) or from topics (sink)."}, labels),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_connector_records_out_total",
			Help: "Records a connector delivered: stored by the broker (source) or written and acknowledged (sink)."}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_connector_errors_total",
			Help: "Failed sends, writes and sessions of a connector."}, labels),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_connector_restarts_total",
			Help: "Sessions of a connector instance restarted after a failure."}, labels),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_connector_checkpoints_total",
			Help: "Checkpoints a connector instance stored in the metadata store."}, labels),
		lastReceived: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mb_connector_last_received_timestamp_seconds",
			Help: "When a connector instance last took in a record (Unix seconds)."}, labels),
	}
	supervise.Register(reg, m.in, m.out, m.errors, m.restarts, m.checkpoints, m.lastReceived)
	return m
}

type instanceMetrics struct {
	in, out, errors, restarts, checkpoints prometheus.Counter
	lastReceived                           prometheus.Gauge
}

func (m *metrics) instance(kind Kind, c *Config, id int) instanceMetrics {
	l := prometheus.Labels{"kind": string(kind), "connector": c.FQN(), "type": c.Type(), "instance": strconv.Itoa(id)}
	return instanceMetrics{in: m.in.With(l), out: m.out.With(l), errors: m.errors.With(l),
		restarts: m.restarts.With(l), checkpoints: m.checkpoints.With(l), lastReceived: m.lastReceived.With(l)}
}

func (m *metrics) forget(kind Kind, c *Config) {
	l := prometheus.Labels{"kind": string(kind), "connector": c.FQN()}
	supervise.Forget(l, m.in, m.out, m.errors, m.restarts, m.checkpoints, m.lastReceived)
}
