package broker

import "github.com/prometheus/client_golang/prometheus"

// markerMetrics count the replicated subscription markers
// (replicated_snapshots.go); names follow Pulsar's where it has one.
type markerMetrics struct {
	written          *prometheus.CounterVec
	snapshotsStarted prometheus.Counter
	snapshotsDone    prometheus.Counter
	snapshotsTimeout prometheus.Counter
	snapshotDuration prometheus.Histogram
	updatesSent      prometheus.Counter
	updatesApplied   prometheus.Counter
}

func newMarkerMetrics(reg prometheus.Registerer) *markerMetrics {
	m := &markerMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_markers_written_total",
			Help: "Marker entries this broker wrote into topics, by type (snapshot_request, snapshot_response, snapshot, update)."}, []string{"type"}),
		snapshotsStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_replicated_subscriptions_snapshots_started_total",
			Help: "Replicated subscription snapshots started (SNAPSHOT_REQUEST markers written)."}),
		snapshotsDone: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_replicated_subscriptions_snapshots_completed_total",
			Help: "Replicated subscription snapshots completed (SNAPSHOT markers written)."}),
		snapshotsTimeout: prometheus.NewCounter(prometheus.CounterOpts{Name: "pulsar_replicated_subscriptions_timedout_snapshots",
			Help: "Replicated subscription snapshots dropped after 30 s without every remote's response."}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mb_replicated_subscriptions_snapshot_seconds",
			Help:    "Time from a snapshot request to its SNAPSHOT marker.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		updatesSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_replicated_subscriptions_updates_sent_total",
			Help: "UPDATE markers written: a replicated subscription's mark-delete passed a snapshot."}),
		updatesApplied: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_replicated_subscriptions_updates_applied_total",
			Help: "Replicated UPDATE markers that moved a local subscription forward."}),
	}
	if reg != nil {
		reg.MustRegister(m.written, m.snapshotsStarted, m.snapshotsDone, m.snapshotsTimeout, m.snapshotDuration, m.updatesSent, m.updatesApplied)
	}
	return m
}
