package tiered

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// BenchmarkCatchUpRead reads 20,000 entries of 1 KiB from the start, from
// the local journal and from the object store (Versity gateway on
// loopback), as a catch-up consumer does; caches are cold each round
// (the ledger's entry cache, the block cache; not the OS page cache).
func BenchmarkCatchUpRead(b *testing.B) {
	const n, size = 20000, 1024
	gw := s3test.Start(b)
	objects := gw.Bucket(b, "bench", nil)
	dir := b.TempDir()
	opts := Options{Objects: objects, Prefix: "bench", DeletionLag: -1, Dir: filepath.Join(dir, "offload")}
	open := func() (*Store, ledger.Ledger) {
		in, err := local.Open(local.Options{Dir: filepath.Join(dir, "ledger")})
		if err != nil {
			b.Fatal(err)
		}
		st, err := New(in, opts)
		if err != nil {
			b.Fatal(err)
		}
		l, err := st.Open(context.Background(), topic)
		if err != nil {
			b.Fatal(err)
		}
		return st, l
	}
	st, l := open()
	done := make(chan error, n)
	data := make([]byte, size)
	for range n {
		l.Append(append([]byte(nil), data...), func(_ int64, err error) { done <- err })
	}
	for range n {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B, l ledger.Ledger) {
		ctx := context.Background()
		for from := int64(0); from < n; {
			es, err := l.Read(ctx, from, 500, 1<<20)
			if err != nil || len(es) == 0 {
				b.Fatalf("read from %d: %d entries, %v", from, len(es), err)
			}
			from = es[len(es)-1].ID + 1
		}
	}
	b.Run("local", func(b *testing.B) {
		b.SetBytes(n * size)
		for range b.N {
			b.StopTimer()
			st.Close()
			st, l = open() // cold entry cache (the OS page cache stays warm)
			b.StartTimer()
			read(b, l)
		}
	})
	lo := l.(*Ledger)
	if err := lo.Offload(n); err != nil {
		b.Fatal(err)
	}
	for lo.OffloadStatus().Status == ledger.OffloadRunning {
		time.Sleep(10 * time.Millisecond)
	}
	if st := lo.OffloadStatus(); st.Status != ledger.OffloadSuccess || lo.inner.FirstEntryID() != n {
		b.Fatalf("offload: %+v, local first entry %d", st, lo.inner.FirstEntryID())
	}
	b.Run("object_store", func(b *testing.B) {
		b.SetBytes(n * size)
		for range b.N {
			b.StopTimer()
			st.Close()
			st, l = open() // cold block cache
			b.StartTimer()
			read(b, l)
		}
	})
	st.Close()
}
