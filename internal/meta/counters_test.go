package meta

import (
	"context"
	"sync"
	"testing"
)

// TestProducerNameGeneratorIDPerStart: every start of a store (fresh, then
// reopened after a close) gets an id no earlier start got, from 0.
func TestProducerNameGeneratorIDPerStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var ids []int64
	for start := 0; start < 3; start++ {
		s, err := OpenEmbedded(dir)
		if err != nil {
			t.Fatal(err)
		}
		r := &Resources{Store: s}
		id, err := r.NextProducerNameGeneratorID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Bootstrap(ctx, "standalone", ClusterData{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		s.Close()
	}
	if ids[0] != 0 || ids[1] != 1 || ids[2] != 2 {
		t.Fatalf("generator ids of three starts: %v, want [0 1 2]", ids)
	}
}

// TestProducerNameGeneratorIDAfterUpgrade: a store bootstrapped by a version
// without the counter named producers {cluster}-0-{seq}; its first id is 1.
func TestProducerNameGeneratorIDAfterUpgrade(t *testing.T) {
	ctx := context.Background()
	r := &Resources{Store: openTest(t)}
	if err := r.Bootstrap(ctx, "standalone", ClusterData{}); err != nil {
		t.Fatal(err)
	}
	if id, err := r.NextProducerNameGeneratorID(ctx); err != nil || id != 1 {
		t.Fatalf("first id on an old store: %d %v, want 1", id, err)
	}
	if id, err := r.NextProducerNameGeneratorID(ctx); err != nil || id != 2 {
		t.Fatalf("second id: %d %v, want 2", id, err)
	}
}

// TestNextCounterValueConcurrent: concurrent callers never get the same value.
func TestNextCounterValueConcurrent(t *testing.T) {
	ctx := context.Background()
	r := &Resources{Store: openTest(t)}
	const callers, each = 8, 25
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v, err := r.NextCounterValue(ctx, "test", 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[v] {
					t.Errorf("value %d handed out twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for v := range int64(callers * each) {
		if !seen[v] {
			t.Fatalf("value %d never handed out (got %d values)", v, len(seen))
		}
	}
}
