package tiered

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Metrics of tiered storage (the object store's own calls are measured by
// objstore.Metrics).
type Metrics struct {
	offloadedBytes   prometheus.Counter
	offloadedObjects prometheus.Counter
	offloadErrors    prometheus.Counter
	readEntries      prometheus.Counter
	readBytes        prometheus.Counter
	readErrors       prometheus.Counter
	corrupt          prometheus.Counter
	cacheHits        prometheus.Counter
	cacheMisses      prometheus.Counter
	cacheBytes       prometheus.Gauge
	deletedObjects   prometheus.Counter
	deleteErrors     prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		offloadedBytes:   c("mb_offload_bytes_total", "Bytes of entry data offloaded to the object store."),
		offloadedObjects: c("mb_offload_objects_total", "Segment objects written and recorded in a manifest."),
		offloadErrors:    c("mb_offload_errors_total", "Offloads that ended in ERROR."),
		readEntries:      c("mb_offload_read_entries_total", "Entries served from the object store."),
		readBytes:        c("mb_offload_read_bytes_total", "Bytes of entry data served from the object store."),
		readErrors:       c("mb_offload_read_errors_total", "Reads of offloaded entries that failed (store unreachable, corrupt object)."),
		corrupt:          c("mb_offload_corrupt_objects_total", "Segment objects (or blocks) that failed their checksum: never served."),
		cacheHits:        c("mb_offload_cache_hits_total", "Block reads answered by the block cache."),
		cacheMisses:      c("mb_offload_cache_misses_total", "Block reads that went to the object store."),
		deletedObjects:   c("mb_offload_deleted_objects_total", "Segment objects deleted from the object store (trimmed by retention, orphans, deleted topics)."),
		deleteErrors:     c("mb_offload_delete_errors_total", "Deletions of segment objects that failed (retried, or left as orphans)."),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mb_offload_cache_bytes",
			Help: "Bytes of object blocks held by the block cache."}),
	}
	if reg != nil {
		reg.MustRegister(m.offloadedBytes, m.offloadedObjects, m.offloadErrors, m.readEntries, m.readBytes,
			m.readErrors, m.corrupt, m.cacheHits, m.cacheMisses, m.cacheBytes, m.deletedObjects, m.deleteErrors)
	}
	return m
}

// cache is the part of m the block cache updates.
func (m *Metrics) cache() object.CacheMetrics {
	return object.CacheMetrics{Hits: m.cacheHits, Misses: m.cacheMisses, Corrupt: m.corrupt, Bytes: m.cacheBytes}
}
