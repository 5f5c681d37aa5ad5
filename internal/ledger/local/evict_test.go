package local

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

func TestCacheTotalBudget(t *testing.T) {
	const perLedger, total = 64 << 10, 128 << 10
	evicted := make(chan struct{}, 1)
	s := openStore(t, Options{Dir: t.TempDir(), FS: vfs.NewMem(), CacheBytes: perLedger, CacheTotalBytes: total,
		onEvict: func() {
			select {
			case evicted <- struct{}{}:
			default:
			}
		}})
	defer s.Close()
	var ls []ledger.Ledger
	want := map[string][][]byte{}
	// Eight ledgers fill their own caches one after the other: 512 KiB of
	// caches without the total budget.
	for i := range 8 {
		l := openLedger(t, s, fmt.Sprintf("t%d", i))
		ls = append(ls, l)
		for j := range 64 {
			data := ledgertest.Payload(l.Name(), j, 1024)
			ledgertest.MustAppend(t, l, data)
			want[l.Name()] = append(want[l.Name()], data)
		}
	}
	// Each append over the budget kicks the evictor; wait for its runs.
	for s.CacheBytes() > total {
		select {
		case <-evicted:
		case <-time.After(10 * time.Second):
			t.Fatalf("caches hold %d bytes, budget %d", s.CacheBytes(), total)
		}
	}
	// The ledger appended to last keeps its cache; the first ones gave theirs up.
	last, first := ls[7].(*handle).l, ls[0].(*handle).l
	last.mu.Lock()
	lastBytes := last.cache.bytes
	last.mu.Unlock()
	first.mu.Lock()
	firstBytes := first.cache.bytes
	first.mu.Unlock()
	if lastBytes < perLedger/2 || firstBytes != 0 {
		t.Fatalf("cache bytes: last ledger %d, first ledger %d; want the most recent kept", lastBytes, firstBytes)
	}
	// Evicted entries are read from disk, intact.
	for _, l := range ls {
		got := ledgertest.ReadAll(t, l, 0)
		if len(got) != len(want[l.Name()]) {
			t.Fatalf("%s: %d entries, want %d", l.Name(), len(got), len(want[l.Name()]))
		}
		for i, e := range got {
			if !bytes.Equal(e.Data, want[l.Name()][i]) {
				t.Fatalf("%s: entry %d differs", l.Name(), i)
			}
		}
	}
	// Closing a ledger gives its cache back to the total.
	before := s.CacheBytes()
	if err := ls[7].Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.CacheBytes(); got != before-lastBytes {
		t.Fatalf("after close: %d bytes cached, want %d", got, before-lastBytes)
	}
}
