package objstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts object-store calls by operation (put, get, delete, list).
type Metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_objstore_requests_total",
			Help: "Object store calls, by operation (put, get, delete, list); retries inside a call are not counted."}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_objstore_errors_total",
			Help: "Object store calls that failed (after retries), by operation; a write-once put finding the object and a get of a missing object are not errors."}, []string{"op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mb_objstore_request_seconds",
			Help:    "Duration of object store calls, retries included, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_objstore_bytes_total",
			Help: "Bytes written (put) and read (get) by successful object store calls."}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.latency, m.bytes)
	}
	return m
}
