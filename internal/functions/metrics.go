package functions

import (
	"math"
	"strconv"

	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus collectors, per function instance.
// Names follow Pulsar's function metrics (pulsar_function_*); latency is a
// histogram in seconds.
type metrics struct {
	received       *prometheus.CounterVec
	processed      *prometheus.CounterVec
	userExceptions *prometheus.CounterVec
	sysExceptions  *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	lastInvocation *prometheus.GaugeVec
	restarts       *prometheus.CounterVec
	inProcess      *prometheus.GaugeVec
}

var labels = []string{"tenant", "namespace", "function", "instance_id"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_function_received_total",
			Help: "Messages the function instance received."}, labels),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_function_processed_successfully_total",
			Help: "Messages the function instance processed without error."}, labels),
		userExceptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_function_user_exceptions_total",
			Help: "Messages the function failed itself (its handler returned an error or panicked)."}, labels),
		sysExceptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_function_system_exceptions_total",
			Help: "Failures of the sandbox or the worker: time budget exceeded, traps, crashes, publish failures."}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mb_function_process_latency_seconds",
			Help:    "Time of one call of the function (the WASM call, without publishing).",
			Buckets: prometheus.ExponentialBuckets(1e-6, math.Sqrt2*math.Sqrt2, 24)}, labels),
		lastInvocation: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pulsar_function_last_invocation",
			Help: "Time of the instance's last call, in milliseconds since the epoch."}, labels),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_function_instance_restarts_total",
			Help: "Restarts of the instance's sandbox or consumer after a failure."}, labels),
		inProcess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mb_function_inprocess",
			Help: "1 while the instance reads its inputs in process (through the broker's dispatcher), 0 on the client path."}, labels),
	}
	supervise.Register(reg, m.received, m.processed, m.userExceptions, m.sysExceptions, m.latency, m.lastInvocation, m.restarts, m.inProcess)
	return m
}

// instanceMetrics are one instance's children of the vectors.
type instanceMetrics struct {
	received, processed, userExceptions, sysExceptions, restarts prometheus.Counter
	latency                                                      prometheus.Observer
	lastInvocation, inProcess                                    prometheus.Gauge
}

func (m *metrics) instance(c *Config, id int) instanceMetrics {
	l := prometheus.Labels{"tenant": c.Tenant, "namespace": c.Namespace, "function": c.Name, "instance_id": strconv.Itoa(id)}
	return instanceMetrics{
		received: m.received.With(l), processed: m.processed.With(l),
		userExceptions: m.userExceptions.With(l), sysExceptions: m.sysExceptions.With(l), restarts: m.restarts.With(l),
		latency: m.latency.With(l), lastInvocation: m.lastInvocation.With(l), inProcess: m.inProcess.With(l),
	}
}

// forget drops a deleted function's series.
func (m *metrics) forget(c *Config) {
	l := prometheus.Labels{"tenant": c.Tenant, "namespace": c.Namespace, "function": c.Name}
	supervise.Forget(l, m.received, m.processed, m.userExceptions, m.sysExceptions, m.latency, m.lastInvocation, m.restarts, m.inProcess)
}
