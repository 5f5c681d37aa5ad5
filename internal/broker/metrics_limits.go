package broker

import "github.com/prometheus/client_golang/prometheus"

// limitsMetrics count what the limit policies did (unacked.go, limits.go).
type limitsMetrics struct {
	unackedBlocked *prometheus.CounterVec
	refused        *prometheus.CounterVec
	expired        prometheus.Counter
	throttled      *prometheus.CounterVec
}

func newLimitsMetrics(reg prometheus.Registerer) *limitsMetrics {
	m := &limitsMetrics{
		unackedBlocked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_unacked_blocked_total",
			Help: "Times dispatch was blocked on unacknowledged messages, by level (consumer, subscription)."}, []string{"level"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_limit_refusals_total",
			Help: "Requests refused by a limit policy, by limit (max_subscriptions_per_topic, max_message_size, max_topics_per_namespace)."}, []string{"limit"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_subscriptions_expired_total",
			Help: "Durable subscriptions deleted by the subscription expiration policy."}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_throttled_total",
			Help: "Times a rate policy made a connection, subscription or consumer wait or refused it, by kind (publish, dispatch, subscribe)."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.unackedBlocked, m.refused, m.expired, m.throttled)
	}
	return m
}
