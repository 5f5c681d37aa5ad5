package broker

import "github.com/prometheus/client_golang/prometheus"

// compactionMetrics are the broker-wide compaction collectors.
type compactionMetrics struct {
	runs     *prometheus.CounterVec
	duration prometheus.Histogram
	removed  prometheus.Counter
	kept     prometheus.Counter
}

func newCompactionMetrics(reg prometheus.Registerer) *compactionMetrics {
	m := &compactionMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_compaction_runs_total",
			Help: "Topic compactions finished, by result (success, error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mb_compaction_duration_seconds",
			Help: "Duration of topic compactions.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_compaction_removed_messages_total",
			Help: "Messages left out of compacted views (older values, tombstones, messages without a key)."}),
		kept: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_compaction_kept_messages_total",
			Help: "Messages kept in compacted views."}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration, m.removed, m.kept)
	}
	return m
}
