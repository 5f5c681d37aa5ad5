package schema

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the registry's Prometheus collectors.
type Metrics struct {
	registrations *prometheus.CounterVec
	incompatible  prometheus.Counter
	deletions     prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_schema_registrations_total",
			Help: "Schemas registered by producers and uploads, by result: created, existing, incompatible, invalid, error."}, []string{"result"}),
		incompatible: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_schema_incompatible_total",
			Help: "Producers, consumers and uploads refused for an incompatible schema."}),
		deletions: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_schema_deletions_total",
			Help: "Topic schemas deleted through the admin API."}),
	}
	if reg != nil {
		reg.MustRegister(m.registrations, m.incompatible, m.deletions)
	}
	return m
}
