package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/cluster"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
)

// manual turns the background rewrite and collection off: the test runs
// the passes.
func manual(o *cluster.Options) { o.RewriteInterval, o.GCInterval = -1, -1 }

// fill appends n entries of topic tag to l in rounds of `round`, each round
// its own WAL object.
func fill(t *testing.T, l ledger.Ledger, tag string, from, n, round int) {
	t.Helper()
	for i := from; i < from+n; i += round {
		var cs []<-chan ledgertest.Result
		for k := i; k < min(i+round, from+n); k++ {
			cs = append(cs, ledgertest.AppendAsync(l, ledgertest.Payload(tag, k, 100)))
		}
		for _, c := range cs {
			if r := ledgertest.Wait(t, c); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
}

func checkAll(t *testing.T, l ledger.Ledger, tag string, from, n int) {
	t.Helper()
	es := ledgertest.ReadAll(t, l, int64(from))
	if len(es) != n {
		t.Fatalf("%s: read %d entries from %d, want %d", tag, len(es), from, n)
	}
	for i, en := range es {
		if en.ID != int64(from+i) || !bytes.Equal(en.Data, ledgertest.Payload(tag, from+i, 100)) {
			t.Fatalf("%s: entry %d (id %d) differs", tag, from+i, en.ID)
		}
	}
}

func (e *env) count(t *testing.T, prefix string) int {
	t.Helper()
	objs, err := e.objects.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

func (e *env) keys(t *testing.T, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := e.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

func revoke(t *testing.T, e *env, s *cluster.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.client.Revoke(ctx, s.Lease()); err != nil {
		t.Fatal(err)
	}
}

// testRewrite: WAL data becomes one segment object per topic, the index
// shrinks to one entry, the WAL objects are collected, and every entry
// reads back, on this broker and on a new owner, before and after more
// appends.
func testRewrite(t *testing.T, e *env) {
	p := e.prefix()
	obj := p[1:] + "obj/"
	a := e.open(t, p, "a", e.objects, manual)
	ls := make([]ledger.Ledger, 2)
	for i := range ls {
		l, err := a.Open(context.Background(), fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
		fill(t, l, l.Name(), 0, 60, 10)
	}
	wals := e.count(t, obj+"wal/")
	if wals < 6 {
		t.Fatalf("%d WAL objects, want at least 6", wals)
	}
	n, err := a.Rewrite(context.Background(), time.Now())
	if err != nil || n != 2 {
		t.Fatalf("rewrite: %d segments, %v; want 2", n, err)
	}
	if got := e.count(t, obj+"seg/"); got != 2 {
		t.Fatalf("%d segment objects, want 2", got)
	}
	idx := e.keys(t, p+"index/")
	if len(idx) != 2 || !strings.Contains(idx[0], `"seg":"`+obj+"seg/t0/") {
		t.Fatalf("index after the rewrite: %v", idx)
	}
	for _, l := range ls {
		checkAll(t, l, l.Name(), 0, 60)
	}
	if n, err := a.Rewrite(context.Background(), time.Now()); err != nil || n != 0 {
		t.Fatalf("second rewrite: %d, %v; want nothing to do", n, err)
	}
	deleted, err := a.CollectWAL(context.Background())
	if err != nil || deleted != wals {
		t.Fatalf("collected %d WAL objects (%v), want %d", deleted, err, wals)
	}
	if got, refs := e.count(t, obj+"wal/"), e.keys(t, p+"walrefs/"); got != 0 || len(refs) != 0 {
		t.Fatalf("after collection: %d WAL objects, records %v", got, refs)
	}
	fill(t, ls[0], "t0", 60, 20, 10) // WAL again, after the segment
	checkAll(t, ls[0], "t0", 0, 80)
	checkAll(t, ls[0], "t0", 55, 25)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := e.open(t, p, "b", e.objects, manual)
	defer b.Close()
	l, err := b.Open(context.Background(), "t0")
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, l, "t0", 0, 80) // segment and WAL objects, nothing cached
	if n, err := b.Rewrite(context.Background(), time.Now()); err != nil || n != 1 {
		t.Fatalf("rewrite on the new owner: %d, %v", n, err)
	}
	checkAll(t, l, "t0", 0, 80)
	if deleted, err := b.CollectWAL(context.Background()); err != nil || deleted != 2 {
		t.Fatalf("collected %d (%v), want the 2 WAL objects of the later appends", deleted, err)
	}
	checkAll(t, l, "t0", 0, 80)
}

// testRewriteCrash: a broker dies between the pending record and the PUT,
// between the PUT and the index swap, or between a WAL object's deletion
// and its record's: nothing is lost, the next owner deletes what was left
// and finishes the work.
func testRewriteCrash(t *testing.T, e *env) {
	for _, point := range []string{"rewrite:pending", "rewrite:put"} {
		t.Run(point, func(t *testing.T) {
			p := e.prefix()
			obj := p[1:] + "obj/"
			a := e.open(t, p, "a", e.objects, manual)
			cluster.SetCrashHook(a, func(at string) bool { return at == point })
			l, err := a.Open(context.Background(), "t")
			if err != nil {
				t.Fatal(err)
			}
			fill(t, l, "t", 0, 30, 10)
			if _, err := a.Rewrite(context.Background(), time.Now()); err == nil {
				t.Fatal("rewrite went past the crash point")
			}
			wantOrphans := map[string]int{"rewrite:pending": 0, "rewrite:put": 1}[point]
			if got := e.count(t, obj+"seg/"); got != wantOrphans {
				t.Fatalf("%d segment objects after the crash, want %d", got, wantOrphans)
			}
			if got := len(e.keys(t, p+"pending/")); got != 1 {
				t.Fatalf("%d pending records, want 1", got)
			}
			revoke(t, e, a) // the broker is gone
			a.Close()
			b := e.open(t, p, "b", e.objects, manual)
			defer b.Close()
			l, err = b.Open(context.Background(), "t")
			if err != nil {
				t.Fatal(err)
			}
			checkAll(t, l, "t", 0, 30)
			if n, err := b.Rewrite(context.Background(), time.Now()); err != nil || n != 1 {
				t.Fatalf("rewrite on the new owner: %d, %v", n, err)
			}
			if got, pend := e.count(t, obj+"seg/"), e.keys(t, p+"pending/"); got != 1 || len(pend) != 0 {
				t.Fatalf("after the new owner's rewrite: %d segment objects, pending %v", got, pend)
			}
			checkAll(t, l, "t", 0, 30)
		})
	}
	t.Run("gc:delete", func(t *testing.T) {
		p := e.prefix()
		obj := p[1:] + "obj/"
		a := e.open(t, p, "a", e.objects, manual)
		defer a.Close()
		l, err := a.Open(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, "t", 0, 30, 10)
		if _, err := a.Rewrite(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		crashed := false
		cluster.SetCrashHook(a, func(at string) bool {
			if at == "gc:delete" && !crashed {
				crashed = true
				return true
			}
			return false
		})
		if n, err := a.CollectWAL(context.Background()); err == nil || n != 1 {
			t.Fatalf("collection: %d, %v; want a crash after 1 deletion", n, err)
		}
		if got := len(e.keys(t, p+"walrefs/")); got != 3 {
			t.Fatalf("%d WAL records after the crash, want 3 (one object deleted, record kept)", got)
		}
		// The next pass (any broker's) deletes the object again (a no-op) and the record.
		c := e.open(t, p, "c", e.objects, manual)
		defer c.Close()
		if n, err := c.CollectWAL(context.Background()); err != nil || n != 3 {
			t.Fatalf("second collection: %d, %v; want 3", n, err)
		}
		if got, refs := e.count(t, obj+"wal/"), e.keys(t, p+"walrefs/"); got != 0 || len(refs) != 0 {
			t.Fatalf("after collection: %d WAL objects, records %v", got, refs)
		}
		checkAll(t, l, "t", 0, 30)
	})
}

// testTrimCollect: trimmed WAL data is collected without a rewrite, and
// trimmed segment objects are deleted through pending records.
func testTrimCollect(t *testing.T, e *env) {
	p := e.prefix()
	obj := p[1:] + "obj/"
	a := e.open(t, p, "a", e.objects, manual)
	defer a.Close()
	l, err := a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, "t", 0, 20, 10)
	if n, err := a.Rewrite(context.Background(), time.Now()); err != nil || n != 1 {
		t.Fatalf("rewrite: %d, %v", n, err)
	}
	fill(t, l, "t", 20, 20, 10) // two WAL objects after the segment
	l.Trim(40)
	l.Close() // checkpoints the trim
	if pend := e.keys(t, p+"pending/"); len(pend) != 1 {
		t.Fatalf("pending records after the trim: %v", pend)
	}
	if n, err := a.CollectWAL(context.Background()); err != nil || n != 4 {
		t.Fatalf("collected %d (%v), want 4 WAL objects", n, err)
	}
	l, err = a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rewrite(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, pend := e.count(t, obj+"seg/"), e.keys(t, p+"pending/"); got != 0 || len(pend) != 0 {
		t.Fatalf("after the trim: %d segment objects, pending %v", got, pend)
	}
	if l.FirstEntryID() != 40 || l.LastEntryID() != 39 {
		t.Fatalf("first %d last %d, want 40 39", l.FirstEntryID(), l.LastEntryID())
	}
	if id := ledgertest.MustAppend(t, l, []byte("next")); id != 40 {
		t.Fatalf("next id %d, want 40", id)
	}
}

// testOrphans: a WAL object no commit recorded (its broker died between
// PUT and commit) and the segment object of a deleted topic left behind
// are deleted by the second sweep that finds them unreferenced (grace 0
// here), and nothing else is: committed WAL objects and live segments stay
// readable. With the default grace, two quick sweeps delete nothing.
func testOrphans(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.prefix()
	obj := p[1:] + "obj/"
	a := e.open(t, p, "a", e.objects, func(o *cluster.Options) {
		manual(o)
		o.OrphanInterval, o.OrphanGrace = -1, -1
	})
	defer a.Close()
	var ls []ledger.Ledger
	for _, name := range []string{"gone", "kept", "wal"} {
		l, err := a.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, name, 0, 20, 10)
		ls = append(ls, l)
	}
	if n, err := a.Rewrite(ctx, time.Now()); err != nil || n != 3 {
		t.Fatalf("rewrite: %d, %v", n, err)
	}
	fill(t, ls[2], "wal", 20, 20, 10) // WAL objects with their records
	segs, err := e.objects.List(ctx, obj+"seg/gone/")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments of gone: %v, %v", segs, err)
	}
	data, err := e.objects.Get(ctx, segs[0].Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// The crashes the sweep is for: a segment of the deleted topic left
	// behind, a WAL object never committed.
	if err := e.objects.Put(ctx, segs[0].Key, data, false); err != nil {
		t.Fatal(err)
	}
	if err := e.objects.Put(ctx, obj+"wal/dead/0000000000000001/0000000000000001", []byte("MBWL"), false); err != nil {
		t.Fatal(err)
	}
	before := e.count(t, obj)

	slow := e.open(t, p, "b", e.objects, func(o *cluster.Options) { manual(o); o.OrphanInterval = -1 })
	defer slow.Close()
	for range 2 {
		if n, err := slow.SweepOrphans(ctx); err != nil || n != 0 {
			t.Fatalf("sweep within the default grace: %d, %v; want nothing deleted", n, err)
		}
	}
	if n, err := a.SweepOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("first sweep: %d, %v; want nothing deleted yet", n, err)
	}
	if n, err := a.SweepOrphans(ctx); err != nil || n != 2 {
		t.Fatalf("second sweep: %d, %v; want the 2 orphans", n, err)
	}
	if got := e.count(t, obj); got != before-2 {
		t.Fatalf("%d objects after the sweep, want %d", got, before-2)
	}
	if got := e.count(t, obj+"seg/gone/"); got != 0 {
		t.Fatalf("%d segment objects of the deleted topic left", got)
	}
	checkAll(t, ls[1], "kept", 0, 20)
	checkAll(t, ls[2], "wal", 0, 40)
	if n, err := a.SweepOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("third sweep: %d, %v; want nothing more", n, err)
	}
}
