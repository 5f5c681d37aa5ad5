package tiered

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/objstore"
)

// gated blocks Gets while closed, announcing each blocked one on entered.
type gated struct {
	objstore.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	entered chan string
}

func (g *gated) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.entered <- key
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Get(ctx, key, off, n)
}

func (g *gated) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gated) open() {
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
}

func exists(t *testing.T, s objstore.Store, key string) bool {
	t.Helper()
	list, err := s.List(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return len(list) == 1
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 15 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeletionWaitsForReader: retention trims an object while a read of it
// is in progress; the deletion waits, the read gets its entries, then the
// object is deleted and later reads get ErrTrimmed.
func TestDeletionWaitsForReader(t *testing.T) {
	var g *gated
	var raw objstore.Store
	e, _ := newEnv(t, func(s objstore.Store) objstore.Store {
		raw = s
		g = &gated{Store: s, entered: make(chan string, 16)}
		return g
	})
	l := e.ledger()
	fill(t, l, 300)
	if err := l.Offload(200); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	first := l.manifest().Objects[0]
	e.st.cache.Forget(first.Key) // the read must go to the store

	g.close()
	type result struct {
		entries []ledger.Entry
		err     error
	}
	res := make(chan result, 1)
	go func() {
		es, err := l.Read(context.Background(), 0, 5, 1<<20)
		res <- result{es, err}
	}()
	<-g.entered // the reader holds the object, its GET in flight

	l.Trim(first.Last + 1)
	if m := l.manifest(); len(m.Deleting) != 1 || m.Deleting[0].Key != first.Key || m.serves(first.Key) {
		t.Fatalf("manifest after trim: deleting %+v", m.Deleting)
	}
	eventually(t, "draining", func() bool {
		e.st.holds.mu.Lock()
		defer e.st.holds.mu.Unlock()
		return e.st.holds.dying[first.Key]
	})
	if !exists(t, raw, first.Key) {
		t.Fatal("object deleted while a read held it")
	}
	go func() { // the reader's further GETs (index, header, block)
		for range g.entered {
		}
	}()
	g.open()
	r := <-res
	if r.err != nil || len(r.entries) != 5 || r.entries[0].ID != 0 || string(r.entries[4].Data) != string(payload(4)) {
		t.Fatalf("read started before the deletion: %d entries, %v", len(r.entries), r.err)
	}
	eventually(t, "deleted", func() bool { return !exists(t, raw, first.Key) })
	eventually(t, "dropped from the manifest", func() bool { return len(l.manifest().Deleting) == 0 })
	if _, err := l.Read(context.Background(), 0, 5, 1<<20); !errors.Is(err, ledger.ErrTrimmed) {
		t.Fatalf("read after the deletion: %v, want ErrTrimmed", err)
	}
	readAll(t, l, first.Last+1, 300)
	close(g.entered)
}

// TestTrimmedObjectsWaitForTheLag: trimmed objects stay in the store for
// the deletion lag, across a restart, and are deleted after it.
func TestTrimmedObjectsWaitForTheLag(t *testing.T) {
	e, _ := newEnv(t, nil)
	e.opts.DeferDeletionAtOpen = time.Minute // until SetDeletionLag
	e.reopen()
	l := e.ledger()
	l.SetDeletionLag(-1)
	fill(t, l, 2000)
	if err := l.Offload(2000); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	lag := 1500 * time.Millisecond
	l.SetDeletionLag(lag)
	objs := l.manifest().Objects
	if len(objs) < 3 {
		t.Fatalf("%d objects, want several", len(objs))
	}
	cut := objs[1].Last + 1
	trimmedAt := time.Now()
	l.Trim(cut)
	e.reopen() // the Deleting list is durable
	l = e.ledger()
	l.SetDeletionLag(lag)
	if m := l.manifest(); len(m.Deleting) != 2 || m.TrimmedBefore != cut {
		t.Fatalf("after reopen: deleting %d, trimmed before %d", len(m.Deleting), m.TrimmedBefore)
	}
	for _, o := range objs[:2] {
		if !exists(t, e.objects, o.Key) && time.Since(trimmedAt) < lag {
			t.Fatalf("object %s deleted before the lag", o.Key)
		}
	}
	eventually(t, "deleted after the lag", func() bool {
		return !exists(t, e.objects, objs[0].Key) && !exists(t, e.objects, objs[1].Key) && len(l.manifest().Deleting) == 0
	})
	if time.Since(trimmedAt) < lag {
		t.Fatalf("deleted %v after the trim, before the lag %v", time.Since(trimmedAt), lag)
	}
	if !exists(t, e.objects, objs[2].Key) {
		t.Fatal("an untrimmed object was deleted")
	}
	readAll(t, l, cut, 2000)
}

// TestOrphansCollectedAtOpen: an object left by a crash between PUT and
// manifest write is deleted when the ledger is next opened, without
// another offload.
func TestOrphansCollectedAtOpen(t *testing.T) {
	e, _ := newEnv(t, nil)
	l := e.ledger()
	fill(t, l, 100)
	if err := l.Offload(40); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	orphan := e.st.objectKey(topic, l.ID(), 40, 99)
	if err := e.objects.Put(context.Background(), orphan, []byte("left by a crash"), true); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	l = e.ledger()
	eventually(t, "collected", func() bool { return !exists(t, e.objects, orphan) })
	readAll(t, l, 0, 100)
}

func TestObjectKeys(t *testing.T) {
	s := &Store{o: Options{Prefix: "mb"}}
	for name, want := range map[string]string{
		"persistent://public/default/orders":                "mb/public/default/orders/3/0-9",
		"__compacted/persistent://public/default/orders/12": "mb/public/default/orders/__compacted/12/3/0-9",
	} {
		if got := s.objectKey(name, 3, 0, 9); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}
