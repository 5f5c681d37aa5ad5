package etcd

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	resets  prometheus.Counter
}

// NewMetrics registers the store's metrics with reg:
// mb_metadata_request_seconds{op}, mb_metadata_request_errors_total{op}
// and mb_metadata_watch_resets_total.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mb_metadata_request_seconds",
			Help:    "Latency of metadata store (etcd) requests, by op: get, list, put, txn (compare-and-set), delete.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mb_metadata_request_errors_total",
			Help: "Metadata store (etcd) requests that failed (timeouts, lost connections, no leader), by op; watch counts watches that ended with an error and were resumed. Not found and version mismatches are answers, not errors.",
		}, []string{"op"}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mb_metadata_watch_resets_total",
			Help: "Metadata watches that lost history (etcd compaction) or started without a revision, so their receivers re-read everything.",
		}),
	}
	for _, op := range []string{"get", "list", "put", "txn", "delete", "watch"} {
		m.errors.WithLabelValues(op) // a zero series to alert on from the start
	}
	reg.MustRegister(m.latency, m.errors, m.resets)
	return m
}

func (m *Metrics) observe(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.errors.WithLabelValues(op).Inc()
		return
	}
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

func (m *Metrics) reset() {
	if m != nil {
		m.resets.Inc()
	}
}
