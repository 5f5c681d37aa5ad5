package local

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the journal's and the store's Prometheus metrics, one
// collector for the server to register: the journal's (group commits,
// segments, skipped preallocation) from the start, even when no Store is
// opened (an in-memory broker shows them at zero), and the store's gauges
// (cache, damage, disk full) once a Store opened with Options.Metrics runs.
type Metrics struct {
	fsyncs          prometheus.Histogram
	groupBytes      prometheus.Histogram
	entries         prometheus.Counter
	segments        *prometheus.CounterVec
	preallocSkipped *prometheus.CounterVec
	store           atomic.Pointer[Store]
}

// The store's gauges, read from the Store at each scrape.
var (
	cacheBytesDesc = prometheus.NewDesc("mb_ledger_cache_bytes",
		"Bytes of recent entries cached in memory, all topics together.", nil, nil)
	corruptRecordsDesc = prometheus.NewDesc("mb_storage_corrupt_records_total",
		"Damaged journal records and ranges of bytes found, at recovery and by reads.", nil, nil)
	lostEntriesDesc = prometheus.NewDesc("mb_storage_lost_entries_total",
		"Entries lost to damaged storage: skipped by reads, never served.", nil, nil)
	quarantinedDesc = prometheus.NewDesc("mb_storage_quarantined_records",
		"Journal records of ledgers the index does not know: never served; their segments are kept.", nil, nil)
	diskFullDesc = prometheus.NewDesc("mb_storage_disk_full",
		"1 while sends are refused for lack of disk space (below --min-free-disk, or the file system full), else 0.", nil, nil)
	diskFreeDesc = prometheus.NewDesc("mb_storage_disk_free_bytes",
		"Bytes available to the broker on the file system of its data directory.", nil, nil)
	diskTotalDesc = prometheus.NewDesc("mb_storage_disk_total_bytes",
		"Size of the file system of the broker's data directory.", nil, nil)
)

// NewMetrics makes the collectors; fsyncBuckets bound the group-commit
// latency histogram (the server passes the publish latency buckets, so
// that the two compare).
func NewMetrics(fsyncBuckets []float64) *Metrics {
	return &Metrics{
		fsyncs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mb_journal_fsync_seconds",
			Help:    "Duration of journal group commits: write and fdatasync.",
			Buckets: fsyncBuckets,
		}),
		// What a group commit carries tells which writers a producer's
		// fsync waits for (a compaction's appends share the journal).
		groupBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mb_journal_group_bytes",
			Help:    "Entry bytes written by each journal group commit.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 9), // 1 KiB to 64 MiB
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_journal_entries_total", Help: "Entries made durable by the journal."}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_journal_segments_total",
			Help: "Journal segments started, by where they came from: recycled, zero_filled (preallocated) or appended (a new file)."},
			[]string{"source"}),
		preallocSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_journal_prealloc_skipped_total",
			Help: "Spare journal segments not zero-filled, by reason: low_disk (it would leave less than the reserve free)."},
			[]string{"reason"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.fsyncs.Describe(ch)
	m.groupBytes.Describe(ch)
	m.entries.Describe(ch)
	m.segments.Describe(ch)
	m.preallocSkipped.Describe(ch)
	for _, d := range []*prometheus.Desc{cacheBytesDesc, corruptRecordsDesc, lostEntriesDesc, quarantinedDesc, diskFullDesc, diskFreeDesc, diskTotalDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.fsyncs.Collect(ch)
	m.groupBytes.Collect(ch)
	m.entries.Collect(ch)
	m.segments.Collect(ch)
	m.preallocSkipped.Collect(ch)
	st := m.store.Load()
	if st == nil {
		return
	}
	d := st.Damage()
	full := 0.0
	if st.DiskFull() {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(st.CacheBytes()))
	ch <- prometheus.MustNewConstMetric(corruptRecordsDesc, prometheus.CounterValue, float64(d.CorruptRecords))
	ch <- prometheus.MustNewConstMetric(lostEntriesDesc, prometheus.CounterValue, float64(d.LostEntries))
	ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(d.QuarantinedRecords))
	ch <- prometheus.MustNewConstMetric(diskFullDesc, prometheus.GaugeValue, full)
	if free, total, err := st.DiskSpace(); err == nil {
		ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(free))
		ch <- prometheus.MustNewConstMetric(diskTotalDesc, prometheus.GaugeValue, float64(total))
	}
}

// instrument makes the journal's callbacks record into m, after calling
// those already set.
func (m *Metrics) instrument(o *Options) {
	if m == nil {
		return
	}
	onSync, onRoll, onSkip := o.OnSync, o.OnRoll, o.OnPreallocSkipped
	o.OnSync = func(d time.Duration, entries, bytes int) {
		if onSync != nil {
			onSync(d, entries, bytes)
		}
		m.fsyncs.Observe(d.Seconds())
		m.groupBytes.Observe(float64(bytes))
		m.entries.Add(float64(entries))
	}
	o.OnRoll = func(source string) {
		if onRoll != nil {
			onRoll(source)
		}
		m.segments.WithLabelValues(source).Inc()
	}
	o.OnPreallocSkipped = func(reason string) {
		if onSkip != nil {
			onSkip(reason)
		}
		m.preallocSkipped.WithLabelValues(reason).Inc()
	}
}

// attach makes the store's gauges report s.
func (m *Metrics) attach(s *Store) {
	if m != nil {
		m.store.Store(s)
	}
}
