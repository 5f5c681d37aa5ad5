package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/messagebus/messagebus/internal/ledger/cluster"
)

// testRewriteUnloaded: with bundle fencing (Options.Fence), the rewrite
// pass also rewrites the topics this broker owns but has not opened, so
// that their WAL objects are collected; a topic it does not own is left to
// its owner.
func testRewriteUnloaded(t *testing.T, e *env) {
	p := e.prefix()
	obj := p[1:] + "obj/"
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	put, err := e.client.Put(cctx, p+"bundle-owner", "a")
	if err != nil {
		t.Fatal(err)
	}
	fence := cluster.Fence{Key: p + "bundle-owner", Rev: put.Header.Revision}
	var mu sync.Mutex
	owned := map[string]bool{"t0": true, "t1": true, "other": true}
	reg := prometheus.NewRegistry()
	a := e.open(t, p, "a", e.objects, func(o *cluster.Options) {
		manual(o)
		o.Metrics = cluster.NewMetrics(reg)
		o.Fence = func(_ context.Context, topic string) (cluster.Fence, error) {
			mu.Lock()
			defer mu.Unlock()
			if !owned[topic] {
				return cluster.Fence{}, fmt.Errorf("%s: not owned here", topic)
			}
			return fence, nil
		}
	})
	defer a.Close()
	for _, name := range []string{"t0", "t1", "other"} {
		l, err := a.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, name, 0, 30, 10)             // 3 WAL objects of its own
		if err := a.Release(name); err != nil { // unloaded: no broker has it open
			t.Fatal(err)
		}
	}
	mu.Lock()
	owned["other"] = false // its bundle moved to another broker
	mu.Unlock()
	if got := e.count(t, obj+"wal/"); got != 9 {
		t.Fatalf("%d WAL objects, want 9", got)
	}
	n, err := a.Rewrite(ctx, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("rewrite of the unloaded topics: %d segments, %v; want 2 (t0, t1)", n, err)
	}
	if deleted, err := a.CollectWAL(ctx); err != nil || deleted != 6 {
		t.Fatalf("collected %d WAL objects (%v), want the 6 of t0 and t1", deleted, err)
	}
	if got := e.count(t, obj+"wal/"); got != 3 {
		t.Fatalf("%d WAL objects left, want the 3 of the topic owned elsewhere", got)
	}
	idx := strings.Join(e.keys(t, p+"index/"), "\n")
	if strings.Count(idx, `"seg":"`) != 2 || strings.Count(idx, `"wal":"`) != 3 {
		t.Fatalf("index after the rewrite:\n%s", idx)
	}
	// The transient ledgers were closed: opening reads every entry from the segments.
	for _, name := range []string{"t0", "t1"} {
		l, err := a.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		checkAll(t, l, name, 0, 30)
		fill(t, l, name, 30, 10, 10)
		if err := a.Release(name); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.Rewrite(ctx, time.Now()); err != nil || n != 2 {
		t.Fatalf("second rewrite: %d, %v; want 2", n, err)
	}
	if n, err := a.Rewrite(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("third rewrite: %d, %v; want nothing to do", n, err)
	}
	// Found done, the unloaded topics are not looked at again (no etcd
	// transaction) until opened.
	before := gather(t, reg, "mb_cluster_etcd_txns_total")
	if n, err := a.Rewrite(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("fourth rewrite: %d, %v; want nothing to do", n, err)
	}
	if after := gather(t, reg, "mb_cluster_etcd_txns_total"); after != before {
		t.Fatalf("a pass over topics found done issued %v etcd transactions", after-before)
	}
	l, err := a.Open(ctx, "t0")
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, l, "t0", 0, 40)
}

// gather reads counter name from reg.
func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
