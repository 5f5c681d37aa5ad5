package cluster

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the cluster ledger store.
type Metrics struct {
	walFlushes    prometheus.Counter
	walBytes      prometheus.Counter
	walEntries    prometheus.Counter
	walErrors     prometheus.Counter
	txns          prometheus.Counter
	fenced        prometheus.Counter
	flushSeconds  prometheus.Histogram
	cursorCommits prometheus.Counter
	walInflight   prometheus.Gauge

	rewriteSegments prometheus.Counter
	rewriteBytes    prometheus.Counter
	rewriteErrors   prometheus.Counter
	rewriteUnloaded prometheus.Counter
	segmentsDeleted prometheus.Counter
	gcDeleted       prometheus.Counter
	gcErrors        prometheus.Counter
	orphansDeleted  prometheus.Counter
	orphanErrors    prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		walFlushes:      c("mb_cluster_wal_objects_total", "WAL objects written and committed (one etcd transaction each)."),
		walBytes:        c("mb_cluster_wal_bytes_total", "Bytes of WAL objects written."),
		walEntries:      c("mb_cluster_wal_entries_total", "Entries committed through WAL objects."),
		walErrors:       c("mb_cluster_wal_errors_total", "WAL PUTs or index transactions that failed (retried until the commit timeout)."),
		txns:            c("mb_cluster_etcd_txns_total", "etcd transactions issued by the cluster ledger store."),
		fenced:          c("mb_cluster_fenced_total", "Topics whose commit was refused because another broker owns them."),
		cursorCommits:   c("mb_cluster_cursor_checkpoints_total", "Cursor and trim checkpoints committed to etcd."),
		rewriteSegments: c("mb_cluster_rewrite_segments_total", "Segment objects written from WAL data and swapped into a topic's index."),
		rewriteBytes:    c("mb_cluster_rewrite_bytes_total", "Bytes of segment objects written by the WAL rewrite."),
		rewriteErrors:   c("mb_cluster_rewrite_errors_total", "WAL rewrites that failed (retried at the next pass)."),
		rewriteUnloaded: c("mb_cluster_rewrite_unloaded_topics_total", "Topics not loaded by any broker opened by the rewrite pass of their bundle's owner because their index still pointed into WAL objects."),
		segmentsDeleted: c("mb_cluster_segment_objects_deleted_total", "Segment objects deleted (trimmed, topic deleted, or left by a crashed rewrite)."),
		gcDeleted:       c("mb_cluster_wal_gc_deleted_total", "WAL objects deleted because no index entry points into them any more."),
		gcErrors:        c("mb_cluster_wal_gc_errors_total", "WAL garbage collection passes that failed (retried at the next pass)."),
		orphansDeleted:  c("mb_cluster_orphan_objects_deleted_total", "WAL and segment objects deleted by the orphan sweep (no etcd record led to them)."),
		orphanErrors:    c("mb_cluster_orphan_sweep_errors_total", "Orphan sweeps that failed (retried at the next pass)."),
		walInflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mb_cluster_wal_inflight",
			Help: "WAL objects being written or waiting for their index commit (at most --wal-max-inflight)."}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mb_cluster_wal_commit_seconds",
			Help:    "Time from a WAL object's cut to its index commit (PUT + etcd transaction).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.walFlushes, m.walBytes, m.walEntries, m.walErrors, m.txns, m.fenced, m.cursorCommits, m.flushSeconds, m.walInflight,
			m.rewriteSegments, m.rewriteBytes, m.rewriteErrors, m.rewriteUnloaded, m.segmentsDeleted, m.gcDeleted, m.gcErrors,
			m.orphansDeleted, m.orphanErrors)
	}
	return m
}
