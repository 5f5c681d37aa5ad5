package meta_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/metafault"
	"github.com/messagebus/messagebus/internal/naming"
)

// TestPolicyCache: concurrent misses share one read, hits read nothing,
// a change seen by the watch is read again, and errors are returned, not
// cached.
func TestPolicyCache(t *testing.T) {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	f := metafault.ForTest(t, md)
	res := &meta.Resources{Store: f}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := res.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	c := meta.NewPolicyCache(res, 0)
	changed := c.Subscribe()
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ns := naming.Namespace{Tenant: "public", Name: "default"}
	match := metafault.NamespacePolicies(ns)
	remove := f.Inject(metafault.Rule{Match: match, Ops: []metafault.Op{metafault.OpGet}, Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Namespace(ctx, ns); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	remove()
	if _, err := c.Namespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if n := f.CallsMatching(metafault.OpGet, match); n != 1 {
		t.Fatalf("%d reads for 9 lookups of one namespace, want 1", n)
	}

	ttl := 5
	if err := res.UpdateNamespace(ctx, ns, func(p *meta.Policies) error { p.MessageTTLInSeconds = &ttl; return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change notification")
	}
	remove = f.Inject(metafault.Rule{Match: match, Ops: []metafault.Op{metafault.OpGet}, Fail: true})
	if _, err := c.Namespace(ctx, ns); err == nil {
		t.Fatal("a failed read after a change served the stale policies")
	}
	remove()
	p, err := c.Namespace(ctx, ns)
	if err != nil || p.MessageTTLInSeconds == nil || *p.MessageTTLInSeconds != 5 {
		t.Fatalf("after the change: %v %v", p.MessageTTLInSeconds, err)
	}
	if _, err := c.Namespace(ctx, naming.Namespace{Tenant: "public", Name: "nope"}); err == nil {
		t.Fatal("a missing namespace read without error")
	}
}

// silentWatchStore never reports a change: what the cache learns, it
// learns from writes through its own Resources.
type silentWatchStore struct{ *meta.Embedded }

func (silentWatchStore) Watch(ctx context.Context, _ string) <-chan meta.Event {
	ch := make(chan meta.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

// A write through the cache's Resources is read back at once, without
// waiting for the watch (a grant is in force for the next producer).
func TestPolicyCacheReadsItsOwnWrites(t *testing.T) {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	res := &meta.Resources{Store: silentWatchStore{md}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := res.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	c := meta.NewPolicyCache(res, time.Second)
	go c.Run(ctx)
	ns := naming.Namespace{Tenant: "public", Name: "default"}
	if p, err := c.Namespace(ctx, ns); err != nil || p.MaxProducersPerTopic != nil {
		t.Fatalf("before: %+v %v", p, err)
	}
	two := 2
	if err := res.UpdateNamespace(ctx, ns, func(p *meta.Policies) error { p.MaxProducersPerTopic = &two; return nil }); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Namespace(ctx, ns); err != nil || p.MaxProducersPerTopic == nil || *p.MaxProducersPerTopic != 2 {
		t.Fatalf("after the write: %+v %v", p.MaxProducersPerTopic, err)
	}
}
