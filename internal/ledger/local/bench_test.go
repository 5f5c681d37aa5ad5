package local

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
)

// benchAppend appends size-byte entries from parallel appenders, each keeping
// up to inFlight appends outstanding (as a producer with a pending-message
// window does), to topics ledgers on a real directory with real fsyncs.
func benchAppend(b *testing.B, size, inFlight, topics int) {
	var syncs, syncNanos atomic.Int64
	s := openStore(b, Options{Dir: b.TempDir(), OnSync: func(d time.Duration, _, _ int) {
		syncs.Add(1)
		syncNanos.Add(int64(d))
	}})
	defer s.Close()
	ls := make([]ledger.Ledger, topics)
	for i := range ls {
		ls[i] = openLedger(b, s, string(rune('a'+i)))
	}
	data := make([]byte, size) // shared: the store only reads entries
	var failed atomic.Int64
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		l := ls[int(next.Add(1))%topics]
		sem := make(chan struct{}, inFlight)
		done := func(_ int64, err error) {
			if err != nil {
				failed.Add(1)
			}
			<-sem
		}
		for pb.Next() {
			sem <- struct{}{}
			l.Append(data, done)
		}
		for range inFlight {
			sem <- struct{}{}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d appends failed", failed.Load())
	}
	if n := syncs.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "entries/fsync")
		b.ReportMetric(float64(syncNanos.Load())/float64(n)/1e3, "µs/group")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
}

// BenchmarkAppend128B: many small unbatched messages.
func BenchmarkAppend128B(b *testing.B) { benchAppend(b, 128, 256, 4) }

// BenchmarkAppend100KB: client-batched messages (~800 x 128 B per entry).
func BenchmarkAppend100KB(b *testing.B) { benchAppend(b, 100<<10, 8, 4) }

// BenchmarkReadCached reads a tailing window of 100 x 1 KB entries.
func BenchmarkReadCached(b *testing.B) {
	s := openStore(b, Options{Dir: b.TempDir()})
	defer s.Close()
	l := openLedger(b, s, "r")
	var wg sync.WaitGroup
	const n = 10_000
	wg.Add(n)
	for i := range n {
		l.Append(ledgertest.Payload("r", i, 1024), func(int64, error) { wg.Done() })
	}
	wg.Wait()
	b.SetBytes(100 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		from := int64(i*100) % (n - 100)
		es, err := l.Read(context.Background(), from, 100, 1<<20)
		if err != nil || len(es) != 100 {
			b.Fatalf("read %d entries: %v", len(es), err)
		}
	}
}

// BenchmarkReadDisk reads 100 x 1 KB entries that are not cached.
func BenchmarkReadDisk(b *testing.B) {
	s := openStore(b, Options{Dir: b.TempDir(), CacheBytes: -1})
	defer s.Close()
	l := openLedger(b, s, "r")
	var wg sync.WaitGroup
	const n = 10_000
	wg.Add(n)
	for i := range n {
		l.Append(ledgertest.Payload("r", i, 1024), func(int64, error) { wg.Done() })
	}
	wg.Wait()
	b.SetBytes(100 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		from := int64(i*100) % (n - 100)
		es, err := l.Read(context.Background(), from, 100, 1<<20)
		if err != nil || len(es) != 100 {
			b.Fatalf("read %d entries: %v", len(es), err)
		}
	}
}

// BenchmarkSaveCursor: saving a cursor with an ack hole and 1,000 ranges.
func BenchmarkSaveCursor(b *testing.B) {
	s := openStore(b, Options{Dir: b.TempDir()})
	defer s.Close()
	l := openLedger(b, s, "c")
	c := ledger.NewCursorState(-1)
	for id := int64(1); id < 2000; id += 2 {
		c.Ack(id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := l.SaveCursor("sub", c); err != nil {
			b.Fatal(err)
		}
	}
}
