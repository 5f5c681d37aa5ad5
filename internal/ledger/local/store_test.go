package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// quietLogger keeps expected recovery reports out of test output unless -v.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func openLedger(t testing.TB, s ledger.Store, topic string) ledger.Ledger {
	t.Helper()
	l, err := s.Open(context.Background(), topic)
	if err != nil {
		t.Fatalf("open %s: %v", topic, err)
	}
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Harness{
		Durable: true,
		Storage: func(t *testing.T) func(*testing.T) ledger.Store {
			dir := t.TempDir()
			return func(t *testing.T) ledger.Store { return openStore(t, Options{Dir: dir}) }
		},
	})
}

// TestConformanceSmallSegments runs the suite on an in-memory journal with
// tiny segments and cache, so every test crosses segments and reads from disk.
func TestConformanceSmallSegments(t *testing.T) {
	ledgertest.Run(t, ledgertest.Harness{
		Durable: true,
		Storage: func(t *testing.T) func(*testing.T) ledger.Store {
			dir, fs := t.TempDir(), vfs.NewMem()
			return func(t *testing.T) ledger.Store {
				return openStore(t, Options{Dir: dir, FS: fs, SegmentSize: 512, CacheBytes: 300})
			}
		},
	})
}

func TestGroupCommit(t *testing.T) {
	var syncs, synced atomic.Int64
	s := openStore(t, Options{Dir: t.TempDir(), OnSync: func(_ time.Duration, entries, _ int) {
		syncs.Add(1)
		synced.Add(int64(entries))
	}})
	defer s.Close()
	ls := []ledger.Ledger{openLedger(t, s, "a"), openLedger(t, s, "b")}
	const writers, per = 32, 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(writers * per)
	for w := range writers {
		go func() {
			l := ls[w%2]
			for i := range per {
				l.Append(ledgertest.Payload("g", i, 128), func(_ int64, err error) {
					if err != nil {
						failed.Add(1)
					}
					wg.Done()
				})
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	if synced.Load() != writers*per {
		t.Fatalf("OnSync counted %d entries, want %d", synced.Load(), writers*per)
	}
	if syncs.Load() >= writers*per {
		t.Fatalf("%d fsyncs for %d appends: no group commit", syncs.Load(), writers*per)
	}
	t.Logf("%d appends in %d fsyncs", writers*per, syncs.Load())
}

func TestSegmentRollOverAndDiskReads(t *testing.T) {
	dir, fs := t.TempDir(), vfs.NewMem()
	opts := Options{Dir: dir, FS: fs, SegmentSize: 4096, CacheBytes: 1000}
	s := openStore(t, opts)
	a, b := openLedger(t, s, "a"), openLedger(t, s, "b")
	want := map[string][][]byte{}
	for i := range 300 {
		for _, l := range []ledger.Ledger{a, b} {
			data := ledgertest.Payload(l.Name(), i, 20+i%200)
			ledgertest.MustAppend(t, l, data)
			want[l.Name()] = append(want[l.Name()], data)
		}
	}
	names, _ := fs.List(s.journalDir)
	if len(names) < 10 {
		t.Fatalf("%d segments after ~%d bytes with 4 KiB segments", len(names), 600*130)
	}
	la := a.(*handle).l
	la.mu.Lock()
	cacheFirst, cacheLen := la.cache.first, la.cache.len()
	la.mu.Unlock()
	if cacheLen == 0 || cacheFirst == 0 || la.cache.bytes > 1000 {
		t.Fatalf("cache holds %d entries from %d (%d bytes): want the tail within 1000 bytes", cacheLen, cacheFirst, la.cache.bytes)
	}
	check := func(s *Store) {
		t.Helper()
		for name, entries := range want {
			l := openLedger(t, s, name)
			got := ledgertest.ReadAll(t, l, 0)
			if len(got) != len(entries) {
				t.Fatalf("%s: read %d entries, want %d", name, len(got), len(entries))
			}
			for i, e := range got {
				if e.ID != int64(i) || !bytes.Equal(e.Data, entries[i]) {
					t.Fatalf("%s: entry %d differs", name, i)
				}
			}
		}
	}
	check(s)
	// Catch-up reads did not touch the cache.
	la.mu.Lock()
	if la.cache.first != cacheFirst || la.cache.len() != cacheLen {
		t.Fatalf("a disk read changed the cache: %d+%d, was %d+%d", la.cache.first, la.cache.len(), cacheFirst, cacheLen)
	}
	la.mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	defer s.Close()
	check(s)
	for name, entries := range want {
		l := openLedger(t, s, name)
		var size int64
		for _, e := range entries {
			size += int64(len(e))
		}
		if l.Entries() != int64(len(entries)) || l.Size() != size {
			t.Fatalf("%s after reopen: Entries %d Size %d, want %d %d", name, l.Entries(), l.Size(), len(entries), size)
		}
	}
}

func segmentCount(t *testing.T, s *Store) int {
	t.Helper()
	names, err := s.fs.List(s.journalDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if _, ok := parseSegmentName(name); ok {
			n++
		}
	}
	return n
}

func TestSegmentDeletionAfterTrim(t *testing.T) {
	dir, fs := t.TempDir(), vfs.NewMem()
	// Without preallocation: the move into the first spare could come
	// between idle's appends, and the counts below assume they share one
	// segment.
	opts := Options{Dir: dir, FS: fs, SegmentSize: 1024, DisablePreallocation: true}
	s := openStore(t, opts)
	idle, busy := openLedger(t, s, "idle"), openLedger(t, s, "busy")
	// idle writes only at the start; busy keeps writing: idle's entries pin
	// the first segment only.
	for i := range 5 {
		ledgertest.MustAppend(t, idle, ledgertest.Payload("idle", i, 50))
	}
	for i := range 200 {
		ledgertest.MustAppend(t, busy, ledgertest.Payload("busy", i, 100))
	}
	before := segmentCount(t, s)
	s.collectSegments()
	if n := segmentCount(t, s); n != before {
		t.Fatalf("segments deleted without any trim: %d -> %d", before, n)
	}
	busy.Trim(150)
	s.collectSegments()
	mid := segmentCount(t, s)
	if mid >= before || mid < 3 {
		t.Fatalf("after trimming most of busy: %d segments of %d", mid, before)
	}
	busy.Trim(200)
	s.collectSegments()
	// Left: the segment with idle's entries and the active one.
	if n := segmentCount(t, s); n != 2 {
		t.Fatalf("after trimming all of busy: %d segments, want 2", n)
	}
	if es := ledgertest.ReadAll(t, idle, 0); len(es) != 5 {
		t.Fatalf("idle lost entries: %d left", len(es))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, opts)
	idle, busy = openLedger(t, s, "idle"), openLedger(t, s, "busy")
	if busy.FirstEntryID() != 200 || busy.LastEntryID() != 199 || busy.Entries() != 0 {
		t.Fatalf("busy after reopen: first %d last %d entries %d", busy.FirstEntryID(), busy.LastEntryID(), busy.Entries())
	}
	if id := ledgertest.MustAppend(t, busy, []byte("x")); id != 200 {
		t.Fatalf("busy continued at %d, want 200", id)
	}
	if es := ledgertest.ReadAll(t, idle, 0); len(es) != 5 {
		t.Fatalf("idle after reopen: %d entries", len(es))
	}
	// Deleting the last ledger with old entries frees their segment.
	if err := s.Delete(context.Background(), "idle"); err != nil {
		t.Fatal(err)
	}
	busy.Trim(201)
	s.collectSegments()
	if n := segmentCount(t, s); n != 1 {
		t.Fatalf("after deleting idle: %d segments, want only the active one", n)
	}
	s.Close()
}

func TestDeletedLedgerIgnoredOnReplay(t *testing.T) {
	dir, fs := t.TempDir(), vfs.NewMem()
	opts := Options{Dir: dir, FS: fs}
	s := openStore(t, opts)
	a := openLedger(t, s, "a")
	for i := range 10 {
		ledgertest.MustAppend(t, a, ledgertest.Payload("a", i, 10))
	}
	oldID := a.ID()
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	a = openLedger(t, s, "a")
	ledgertest.MustAppend(t, a, []byte("new"))
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	a = openLedger(t, s, "a")
	es := ledgertest.ReadAll(t, a, 0)
	if a.ID() <= oldID || len(es) != 1 || string(es[0].Data) != "new" {
		t.Fatalf("recreated ledger after reopen: id %d (old %d), %d entries", a.ID(), oldID, len(es))
	}
}

func TestLargeEntriesAndLimits(t *testing.T) {
	s := openStore(t, Options{Dir: t.TempDir(), FS: vfs.NewMem(), SegmentSize: 64 << 10, CacheBytes: 1})
	defer s.Close()
	l := openLedger(t, s, "big")
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	for i := range 20 {
		data := make([]byte, rng.IntN(200<<10)) // some bigger than a segment
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if id := ledgertest.MustAppend(t, l, data); id != int64(i) {
			t.Fatalf("id %d, want %d", id, i)
		}
		want = append(want, data)
	}
	for i, e := range ledgertest.ReadAll(t, l, 0) {
		if !bytes.Equal(e.Data, want[i]) {
			t.Fatalf("entry %d differs", i)
		}
	}
	r := ledgertest.Wait(t, ledgertest.AppendAsync(l, make([]byte, MaxEntrySize+1)))
	if r.Err == nil {
		t.Fatal("an entry over MaxEntrySize was accepted")
	}
	if id := ledgertest.MustAppend(t, l, []byte("after")); id != 20 {
		t.Fatalf("append after a refused one got id %d", id)
	}
}

// TestReadSkipsCorruption: a record damaged after recovery is found by the
// read that meets it: never returned, reported once, counted, marked lost so
// that reads go on past it.
func TestReadSkipsCorruption(t *testing.T) {
	fs := vfs.NewMem()
	rec := &logRecorder{}
	s := openStore(t, Options{Dir: t.TempDir(), FS: fs, CacheBytes: -1, Logger: slog.New(rec)})
	defer s.Close()
	l := openLedger(t, s, "c")
	for i := range 3 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("c", i, 100))
	}
	// Flip one byte of entry 1's data behind the store's back.
	x := l.(*handle).l
	x.mu.Lock()
	seq, loc, _ := x.idx.get(1, 0)
	x.mu.Unlock()
	rewrite(t, fs, segmentName(s.journalDir, seq), func(b []byte) []byte {
		b[int(loc.off)+recordHeaderSize+10] ^= 0xff
		return b
	})
	for range 2 {
		es, err := l.Read(context.Background(), 0, 10, 1<<20)
		if err != nil || len(es) != 2 || es[0].ID != 0 || es[1].ID != 2 {
			t.Fatalf("read around a damaged entry: %v %v", es, err)
		}
		for _, e := range es {
			if !bytes.Equal(e.Data, ledgertest.Payload("c", int(e.ID), 100)) {
				t.Fatalf("entry %d differs", e.ID)
			}
		}
	}
	if d := s.Damage(); d.CorruptRecords != 1 || d.LostEntries != 1 {
		t.Fatalf("damage %+v, want one record, one entry", d)
	}
	if n := l.(ledger.DamageReporter).LostEntries(); n != 1 || l.Entries() != 2 {
		t.Fatalf("LostEntries %d, Entries %d", n, l.Entries())
	}
	if msgs := rec.take(); len(msgs) != 1 || !strings.Contains(msgs[0], "entry=1") {
		t.Fatalf("log: %q, want one report naming entry 1", msgs)
	}
	if len(s.Health()) == 0 {
		t.Fatal("health does not report the damage")
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	if _, err := Open(Options{Dir: t.TempDir(), SegmentSize: 2 << 30}); err == nil {
		t.Fatal("Open with a 2 GiB SegmentSize succeeded")
	}
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "ledger-example")
	defer os.RemoveAll(dir)
	s, err := Open(Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	l, _ := s.Open(context.Background(), "persistent://public/default/t")
	done := make(chan int64)
	l.Append([]byte("hello"), func(id int64, err error) { done <- id })
	fmt.Println("durable entry", <-done)
	// Output: durable entry 0
}
