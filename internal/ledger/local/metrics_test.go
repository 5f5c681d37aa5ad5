package local

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/prometheus/client_golang/prometheus"
)

// gather returns the metric families of reg by name, with their sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsBeforeAndAfterOpen(t *testing.T) {
	m := NewMetrics(prometheus.DefBuckets)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	// Without a store (an in-memory broker) only the journal's series show.
	got := gather(t, reg)
	for _, name := range []string{"mb_journal_fsync_seconds", "mb_journal_entries_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing before a store is opened", name)
		}
	}
	if _, ok := got["mb_storage_disk_full"]; ok {
		t.Error("store gauges reported without a store")
	}

	var synced atomic.Int64
	s := openStore(t, Options{Dir: t.TempDir(), Metrics: m, OnSync: func(_ time.Duration, entries, _ int) { synced.Add(int64(entries)) }})
	defer s.Close()
	l := openLedger(t, s, "persistent://public/default/metrics")
	for i := range 3 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("m", i, 64))
	}
	got = gather(t, reg)
	if got["mb_journal_entries_total"] != 3 || got["mb_journal_fsync_seconds"] == 0 {
		t.Errorf("journal metrics = %v, want 3 entries and at least one sync", got)
	}
	if got["mb_journal_segments_total"] < 1 {
		t.Errorf("mb_journal_segments_total = %v, want the segment started at open", got["mb_journal_segments_total"])
	}
	if synced.Load() != 3 {
		t.Errorf("the OnSync already set saw %d entries, want 3: Metrics must chain it", synced.Load())
	}
	for _, name := range []string{"mb_ledger_cache_bytes", "mb_storage_corrupt_records_total",
		"mb_storage_lost_entries_total", "mb_storage_quarantined_records", "mb_storage_disk_full"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing once the store is open", name)
		}
	}
	if got["mb_ledger_cache_bytes"] == 0 {
		t.Error("mb_ledger_cache_bytes = 0 after appends to a cached ledger")
	}
}
