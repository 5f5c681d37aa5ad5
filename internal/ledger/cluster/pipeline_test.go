package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/cluster"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/objstore"
)

// slowPuts delays every PUT and counts how many run at once; a PUT whose
// data contains poison fails.
type slowPuts struct {
	objstore.Store
	delay  time.Duration
	poison []byte
	cut    chan struct{} // closed at the first poisoned PUT (its object was cut)
	once   sync.Once
	now    atomic.Int64
	max    atomic.Int64
}

func (s *slowPuts) Put(ctx context.Context, key string, data []byte, ifNoneMatch bool) error {
	if s.poison != nil && bytes.Contains(data, s.poison) {
		s.once.Do(func() { close(s.cut) })
	}
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.max.Load(); n > m && !s.max.CompareAndSwap(m, n); m = s.max.Load() {
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.poison != nil && bytes.Contains(data, s.poison) {
		return errors.New("poisoned PUT")
	}
	return s.Store.Put(ctx, key, data, ifNoneMatch)
}

// testPipeline: with slow PUTs, several WAL objects are written at once,
// yet every ledger's receipts come in id order and everything reads back.
func testPipeline(t *testing.T, e *env) {
	p := e.prefix()
	slow := &slowPuts{Store: e.objects, delay: 40 * time.Millisecond}
	s := e.open(t, p, "p", slow, func(o *cluster.Options) { o.WALMaxInflight = 4 })
	defer s.Close()
	const topics, per = 4, 60
	var wg sync.WaitGroup
	var bad atomic.Value
	ls := make([]ledger.Ledger, topics)
	for j := range ls {
		l, err := s.Open(context.Background(), fmt.Sprintf("t%d", j))
		if err != nil {
			t.Fatal(err)
		}
		ls[j] = l
	}
	start := time.Now()
	for j, l := range ls {
		wg.Add(1)
		go func() { // one producer per topic, appends spread over time
			defer wg.Done()
			var mu sync.Mutex
			last := int64(-1)
			var all sync.WaitGroup
			for i := range per {
				all.Add(1)
				l.Append(ledgertest.Payload(fmt.Sprint(j), i, 64), func(id int64, err error) {
					defer all.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil || id != last+1 {
						bad.Store(fmt.Sprintf("topic %d: receipt %d after %d (err %v)", j, id, last, err))
					}
					last = id
				})
				time.Sleep(time.Millisecond)
			}
			all.Wait()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if slow.max.Load() < 2 {
		t.Fatalf("at most %d PUT at once with WALMaxInflight 4", slow.max.Load())
	}
	t.Logf("%d appends in %v, up to %d WAL PUTs at once", topics*per, took, slow.max.Load())
	for j, l := range ls {
		es := ledgertest.ReadAll(t, l, 0)
		if len(es) != per {
			t.Fatalf("topic %d: %d entries", j, len(es))
		}
		for i, en := range es {
			if !bytes.Equal(en.Data, ledgertest.Payload(fmt.Sprint(j), i, 64)) {
				t.Fatalf("topic %d entry %d differs", j, i)
			}
		}
	}
}

// testPipelineGap: when a WAL object fails for good, the objects cut after
// it (written in parallel) commit nothing of its ledger: no id is committed
// over the gap, and a new owner sees the ledger end before it.
func testPipelineGap(t *testing.T, e *env) {
	p := e.prefix()
	slow := &slowPuts{Store: e.objects, delay: 30 * time.Millisecond, poison: []byte("poison"), cut: make(chan struct{})}
	s := e.open(t, p, "a", slow, func(o *cluster.Options) {
		o.WALMaxInflight = 4
		o.CommitTimeout = 300 * time.Millisecond
	})
	l, err := s.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Open(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 10))
	}
	poisoned := ledgertest.AppendAsync(l, []byte("poison"))
	<-slow.cut
	// Later appends go into later objects, written while the poisoned PUT retries.
	var later []<-chan ledgertest.Result
	var others []<-chan ledgertest.Result
	for i := range 10 {
		time.Sleep(5 * time.Millisecond)
		later = append(later, ledgertest.AppendAsync(l, ledgertest.Payload("late", i, 10)))
		others = append(others, ledgertest.AppendAsync(other, ledgertest.Payload("u", i, 10)))
	}
	if r := ledgertest.Wait(t, poisoned); r.Err == nil {
		t.Fatalf("poisoned append succeeded: %+v", r)
	}
	for i, c := range later {
		if r := ledgertest.Wait(t, c); r.Err == nil {
			t.Fatalf("append %d after the failed object succeeded with id %d", i, r.ID)
		}
	}
	for i, c := range others {
		if r := ledgertest.Wait(t, c); r.Err != nil {
			t.Fatalf("append %d of another topic failed: %v", i, r.Err)
		}
	}
	if got := l.LastEntryID(); got != 2 {
		t.Fatalf("last committed id %d, want 2", got)
	}
	s.Close()
	b := e.open(t, p, "b", e.objects, nil)
	defer b.Close()
	l2, err := b.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ledgertest.ReadAll(t, l2, 0)); got != 3 || l2.LastEntryID() != 2 {
		t.Fatalf("new owner reads %d entries, last %d; want 3, 2", got, l2.LastEntryID())
	}
	u2, err := b.Open(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ledgertest.ReadAll(t, u2, 0)); got != 10 {
		t.Fatalf("other topic: %d entries, want 10", got)
	}
}
