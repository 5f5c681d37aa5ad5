package tiered

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
	"github.com/messagebus/messagebus/internal/objstore"
)

// countingStore counts the ranged GETs of each (key, offset, length).
type countingStore struct {
	objstore.Store
	mu   sync.Mutex
	gets map[[3]any]int
}

func (s *countingStore) Get(ctx context.Context, key string, off, length int64) ([]byte, error) {
	s.mu.Lock()
	s.gets[[3]any{key, off, length}]++
	s.mu.Unlock()
	return s.Store.Get(ctx, key, off, length)
}

func (s *countingStore) count(key string, b object.BlockMeta) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[[3]any{key, b.Off, b.Len}]
}

// offloadedBlocks fills and offloads 400 entries into one object of many
// blocks, and reopens the store (cold cache).
func offloadedBlocks(t *testing.T, o func(*Options)) (*env, *countingStore, *Ledger, objectEntry, []object.BlockMeta) {
	t.Helper()
	var cs *countingStore
	e, _ := newEnv(t, func(s objstore.Store) objstore.Store {
		cs = &countingStore{Store: s, gets: map[[3]any]int{}}
		return cs
	})
	e.opts.MaxObjectBytes = 1 << 20 // one object of several blocks
	o(&e.opts)
	e.reopen()
	l := e.ledger()
	fill(t, l, 400)
	if err := l.Offload(400); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	e.reopen()
	l = e.ledger()
	obj := l.manifest().Objects[0]
	x, err := e.st.cache.Index(context.Background(), obj.ref())
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Blocks) < 8 {
		t.Fatalf("%d blocks, want 8 or more", len(x.Blocks))
	}
	return e, cs, l, obj, x.Blocks
}

// TestReadAheadBeyondOneBlock: reading the first entries fetches the next
// ReadAheadBlocks blocks into the cache; two readers of the whole range
// after that fetch every block exactly once between them.
func TestReadAheadBeyondOneBlock(t *testing.T) {
	e, cs, l, obj, offs := offloadedBlocks(t, func(o *Options) { o.ReadAheadBlocks = 3 })
	if _, err := l.Read(context.Background(), 0, 1, 100); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b := 1; b <= 3; b++ { // the read-ahead runs in the background
		for cs.count(obj.Key, offs[b]) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("block %d was not read ahead", b)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := cs.count(obj.Key, offs[5]); n != 0 {
		t.Fatalf("block 5 read %d times: read-ahead went past 3 blocks", n)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readAll(t, l, 0, 400)
		}()
	}
	wg.Wait()
	for b, off := range offs {
		if n := cs.count(obj.Key, off); n != 1 {
			t.Fatalf("block %d (at %d) read %d times from the store, want 1", b, off.Off, n)
		}
	}
	if size, max := e.st.cache.Size(), e.st.cache.Budget(); size > max {
		t.Fatalf("cache holds %d bytes, budget %d", size, max)
	}
}

// TestReadAheadStaysInBudget: with a budget of four blocks, read-ahead
// keeps the blocks being read within a quarter of it (one block), and a
// sequential reader still reads everything once. (The cache counts a
// block's off-heap buffer, whole pages, in the budget.)
func TestReadAheadStaysInBudget(t *testing.T) {
	page := int64(os.Getpagesize())
	block := (2100 + page - 1) / page * page
	_, cs, l, obj, offs := offloadedBlocks(t, func(o *Options) { o.CacheBytes = 4 * block; o.ReadAheadBlocks = 8 })
	readAll(t, l, 0, 400)
	for b, off := range offs {
		if n := cs.count(obj.Key, off); n != 1 {
			t.Fatalf("block %d read %d times, want 1", b, n)
		}
	}
}

// TestOffloadMaxRate: an offload of about 300 KiB at 200 KiB/s (a burst of
// 64 KiB) takes at least a second; without a limit it is not throttled.
func TestOffloadMaxRate(t *testing.T) {
	e, _ := newEnv(t, nil)
	e.opts.MaxRate = 200 << 10
	e.opts.MaxObjectBytes = 1 << 20
	e.reopen()
	l := e.ledger()
	data := make([]byte, 1024)
	done := make(chan error, 300)
	for range 300 {
		l.Append(data, func(_ int64, err error) { done <- err })
	}
	for range 300 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := l.Offload(300); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	// (300 KiB - 64 KiB burst) / 200 KiB/s = 1.18 s at least.
	if took := time.Since(start); took < time.Second {
		t.Fatalf("offload of 300 KiB at 200 KiB/s took %v", took)
	}
}
