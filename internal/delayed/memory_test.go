package delayed

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// TestMemoryBound adds a million entries due an hour or more from now and
// checks that the in-memory window stays within its documented bound (and
// that the Go heap does not grow with the entries).
func TestDelayedMemoryBound(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 200_000
	}
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushInterval: time.Hour}
	st, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	x, err := st.Index(sub, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	heapBefore := heapInuse()
	now := time.Now().UnixMilli()
	maxWindow := 0
	for i := range n {
		// Due between one and two hours from now, in no particular order.
		at := now + 3_600_000 + int64((i*7919)%3_600_000)
		x.Add(int64(i), at)
		if i%1000 == 0 {
			maxWindow = max(maxWindow, x.ram.len())
		}
	}
	// A message due soon still comes first.
	x.Add(int64(n), now+1000)
	if at, ok := x.Next(); !ok || at != now+1000 {
		t.Fatalf("next %d, %v; want %d", at, ok, now+1000)
	}
	bound := windowBound(DefaultWindowEntries)
	held := x.ram.bytes()
	heapGrowth := heapInuse() - heapBefore
	t.Logf("%d entries: window %d entries (max seen %d), %d KiB; bound %d KiB; Go heap growth %d KiB; Len %d",
		n, x.ram.len(), maxWindow, held>>10, bound>>10, heapGrowth>>10, x.Len())
	if x.ram.len() > DefaultWindowEntries || maxWindow > DefaultWindowEntries {
		t.Fatalf("window holds %d entries (max %d), bound %d", x.ram.len(), maxWindow, DefaultWindowEntries)
	}
	if held > bound {
		t.Fatalf("window holds %d bytes, bound %d", held, bound)
	}
	// An in-memory heap would hold 16 B × n (16 MB for a million) and more
	// while growing; the store's own Go memory is constant.
	// Under the race detector Pebble's memtables and cache live on the Go heap.
	if limit := int64(4 << 20); heapGrowth > limit && !raceEnabled {
		t.Fatalf("Go heap grew by %d bytes for %d delayed entries, limit %d", heapGrowth, n, limit)
	}
	if x.Len() != n+1 {
		t.Fatalf("len %d, want %d", x.Len(), n+1)
	}
	// The entries come back in order from disk, one window at a time.
	if got := x.PopDue(now+1000, 10); len(got) != 1 || got[0] != int64(n) {
		t.Fatalf("popped %v", got)
	}
	var prev int64
	for i, id := range x.PopDue(now+3_600_000+10_000, 100_000) {
		at := now + 3_600_000 + int64((id*7919)%3_600_000)
		if at < prev {
			t.Fatalf("pop %d out of order", i)
		}
		prev = at
	}
	if x.ram.len() > DefaultWindowEntries {
		t.Fatalf("window holds %d entries after refills", x.ram.len())
	}
}

// TestMemoryBoundNear fills the window with entries due within it, in no
// particular order: it stays at WindowEntries, evicting the latest to disk,
// and everything comes back in order.
func TestDelayedMemoryBoundNear(t *testing.T) {
	n := 300_000
	if raceEnabled || testing.Short() {
		n = 50_000
	}
	clock := time.Now().UnixMilli()
	opts := Options{
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		FlushInterval: time.Hour,
		WindowEntries: 1000,
		now:           func() int64 { return clock },
	}
	st, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	x, err := st.Index(sub, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	due := func(id int64) int64 { return clock + 1 + (id*7919)%4000 }
	for i := range int64(n) {
		x.Add(i, due(i))
		if x.ram.len() > 1000 {
			t.Fatalf("window holds %d entries, bound 1000", x.ram.len())
		}
	}
	if held, bound := x.ram.bytes(), windowBound(1000); held > bound {
		t.Fatalf("window holds %d bytes, bound %d", held, bound)
	}
	got := 0
	prev := key{at: clock}
	for now := clock; now <= clock+4001; now += 50 {
		for _, id := range x.PopDue(now, 1<<30) {
			k := key{at: due(id), id: id}
			if k.less(prev) || k.at > now {
				t.Fatalf("popped %v after %v at %d", k, prev, now)
			}
			prev = k
			got++
		}
		if x.ram.len() > 1000 {
			t.Fatalf("window holds %d entries, bound 1000", x.ram.len())
		}
	}
	if got != n {
		t.Fatalf("popped %d, want %d", got, n)
	}
}

func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// BenchmarkAdd measures Add of entries due in the future, beyond the window
// (the common case: only a batch append).
func BenchmarkAdd(b *testing.B) {
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	st, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	x, err := st.Index(sub, 1, false)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		x.Add(int64(i), now+3_600_000+int64(i%100_000))
	}
}

// BenchmarkAddNear measures Add of entries due within the window.
func BenchmarkAddNear(b *testing.B) {
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	st, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	x, err := st.Index(sub, 1, false)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		x.Add(int64(i), now+1+int64(i%4000))
		if i%64 == 63 {
			x.PopDue(now+int64(i%4000), 64)
		}
	}
}
