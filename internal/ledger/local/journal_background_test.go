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

// TestBackgroundAppendsJoinGroupCommits: background appends (a compaction's
// output) do not start group commits of their own while other appends
// come; alone they are written after bgDelay; every one is durable (read
// back after a reopen), in order, and mixing them with normal appends on
// one ledger keeps the order.
func TestBackgroundAppendsJoinGroupCommits(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int64
	s := openStore(t, Options{Dir: dir, OnSync: func(time.Duration, int, int) { syncs.Add(1) }})
	bgl := openLedger(t, s, "compacted")
	fg := openLedger(t, s, "topic")
	bg := bgl.(ledger.BackgroundAppender)

	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	ids := make([]int64, 0, n)
	var mu sync.Mutex
	done := func(id int64, err error) {
		if err != nil {
			failed.Add(1)
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		wg.Done()
	}
	// Alone: written after the delay, in one group.
	wg.Add(10)
	before := syncs.Load()
	for i := range 10 {
		bg.AppendBackground(ledgertest.Payload("b", i, 100), done)
	}
	wg.Wait()
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("10 background appends alone took %d group commits, want 1", got)
	}
	// Beside normal appends: they join the normal appends' groups.
	before = syncs.Load()
	wg.Add(2 * n)
	for i := range n {
		bg.AppendBackground(ledgertest.Payload("b", 10+i, 100), done)
		fg.Append(ledgertest.Payload("f", i, 100), func(_ int64, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
		if i%20 == 0 { // a normal append to the same ledger keeps its place
			wg.Add(1)
			bgl.Append(ledgertest.Payload("n", i, 100), done)
		}
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	if got := syncs.Load() - before; got > n {
		t.Errorf("%d group commits for %d normal and %d background appends", got, n, n)
	}
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("completion %d has id %d: out of order", i, id)
		}
	}
	want := int64(len(ids))
	s.Close()

	s = openStore(t, Options{Dir: dir})
	defer s.Close()
	l, err := s.Open(context.Background(), "compacted")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.LastEntryID() + 1; got != want {
		t.Fatalf("after reopen the ledger has %d entries, want %d", got, want)
	}
}
