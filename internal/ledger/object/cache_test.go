package object

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
)

// memObjects is an in-memory Objects with a GetInto, counting GETs.
type memObjects struct {
	mu   sync.Mutex
	objs map[string][]byte
	gets atomic.Int64
}

func (m *memObjects) Put(_ context.Context, key string, data []byte, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = data
	return nil
}

func (m *memObjects) Get(_ context.Context, key string, off, length int64) ([]byte, error) {
	m.gets.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, ErrObjectNotFound
	}
	if length < 0 {
		length = int64(len(o)) - off
	}
	return append([]byte(nil), o[off:off+length]...), nil
}

func (m *memObjects) GetInto(ctx context.Context, key string, off int64, buf []byte) error {
	b, err := m.Get(ctx, key, off, int64(len(buf)))
	copy(buf, b)
	return err
}

func (m *memObjects) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func cacheFixture(t *testing.T, budgetBlocks int64) (*BlockCache, *memObjects, *Index, []ledger.Entry) {
	t.Helper()
	es := sample(0, 2999, nil)
	obj, err := Encode(Header{LedgerID: 1, First: 0, Last: 2999}, es, 4096)
	if err != nil {
		t.Fatal(err)
	}
	m := &memObjects{objs: map[string][]byte{"o": obj}}
	c := NewBlockCache(m, budgetBlocks*pageRound(4200), CacheMetrics{})
	x, err := c.Index(context.Background(), ObjectRef{Key: "o", Size: int64(len(obj)), First: 0, Last: 2999})
	if err != nil {
		t.Fatal(err)
	}
	return c, m, x, es
}

// inBudget: the cached blocks, the blocks being read and the free buffers
// never exceed the budget.
func inBudget(t *testing.T, c *BlockCache) {
	t.Helper()
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if used := c.c.size + c.c.reading + c.c.freeBytes; used > c.c.max {
		t.Fatalf("cache holds %d bytes (blocks %d, reading %d, free %d), budget %d", used, c.c.size, c.c.reading, c.c.freeBytes, c.c.max)
	}
}

// TestAppendEntriesCopiesWithinBudget: a sequential read through a cache of
// two blocks gets every entry right, within the limits asked, and the
// copies stay right after their blocks were evicted and their buffers
// reused for other blocks.
func TestAppendEntriesCopiesWithinBudget(t *testing.T) {
	c, _, x, es := cacheFixture(t, 2)
	var all []ledger.Entry
	for from := int64(0); from < 3000; {
		var out []ledger.Entry
		total := 0
		for b := x.Find(from); b < len(x.Blocks); b++ {
			var full bool
			var err error
			if out, full, err = c.AppendEntries(context.Background(), "o", x.Blocks[b], from, out, &total, 50, 3000); err != nil {
				t.Fatal(err)
			}
			inBudget(t, c)
			if full {
				break
			}
		}
		if len(out) == 0 || len(out) > 50 || (len(out) > 1 && total > 3000) {
			t.Fatalf("read from %d: %d entries, %d bytes", from, len(out), total)
		}
		all = append(all, out...)
		from = out[len(out)-1].ID + 1
	}
	if len(all) != len(es) {
		t.Fatalf("%d entries, want %d", len(all), len(es))
	}
	for i := range es {
		if all[i].ID != es[i].ID || !bytes.Equal(all[i].Data, es[i].Data) {
			t.Fatalf("entry %d: %d %q, want %d %q", i, all[i].ID, all[i].Data, es[i].ID, es[i].Data)
		}
	}
	// Evicted blocks' buffers were reused: few mappings, all in the budget.
	c.c.mu.Lock()
	maps, mapped := c.c.maps, c.c.mapped
	c.c.mu.Unlock()
	if maps > 4 || mapped > c.Budget() {
		t.Fatalf("%d mappings for %d blocks, %d bytes mapped, budget %d", maps, len(x.Blocks), mapped, c.Budget())
	}
}

// TestPinnedBlockOutlivesEviction: a block evicted while a reader copies out
// of it keeps its memory until the reader unpins; then the buffer is reused.
func TestPinnedBlockOutlivesEviction(t *testing.T) {
	c, _, x, es := cacheFixture(t, 1)
	ctx := context.Background()
	cb, err := c.c.pin(ctx, "o", x.Blocks[0], true)
	if err != nil {
		t.Fatal(err)
	}
	// Reading the next block evicts the pinned one from the cache.
	if _, _, err := c.AppendEntries(ctx, "o", x.Blocks[1], 0, nil, new(int), 1000, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Cached("o", x.Blocks[0]); ok || !cb.evicted || cb.buf == nil {
		t.Fatalf("block 0: cached %v, evicted %v, buffer kept %v", ok, cb.evicted, cb.buf != nil)
	}
	for i, e := range cb.entries {
		if !bytes.Equal(e.Data, es[i].Data) {
			t.Fatalf("pinned entry %d changed: %q", e.ID, e.Data)
		}
	}
	c.c.unpin(cb)
	if cb.buf != nil || cb.entries != nil {
		t.Fatal("the evicted block's buffer was not released at its last unpin")
	}
	inBudget(t, c)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if c.c.mapped > c.c.max {
		t.Fatalf("%d bytes mapped after the unpin, budget %d", c.c.mapped, c.c.max)
	}
}

// TestConcurrentReadersShareGets: readers of the same blocks at once get
// the same entries, with one GET per block, and the budget holds (run with
// -race).
func TestConcurrentReadersShareGets(t *testing.T) {
	c, m, x, es := cacheFixture(t, 64)
	m.gets.Store(0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			for b := range x.Blocks {
				out, _, err := c.AppendEntries(context.Background(), "o", x.Blocks[b], 0, nil, new(int), 1<<20, 1<<30)
				if err != nil {
					errs <- err
					return
				}
				for _, e := range out {
					if e.ID != es[i].ID || !bytes.Equal(e.Data, es[i].Data) {
						errs <- fmt.Errorf("entry %d: %q", e.ID, e.Data)
						return
					}
					i++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := m.gets.Load(); n != int64(len(x.Blocks)) {
		t.Fatalf("%d GETs for %d blocks", n, len(x.Blocks))
	}
	inBudget(t, c)
}

// TestOffHeapBlockCorrupt: a flipped byte in a block read into an off-heap
// buffer is reported as corrupt and the buffer is not kept in the cache.
func TestOffHeapBlockCorrupt(t *testing.T) {
	c, m, x, _ := cacheFixture(t, 4)
	m.mu.Lock()
	m.objs["o"][x.Blocks[2].Off+20] ^= 1
	m.mu.Unlock()
	if _, _, err := c.AppendEntries(context.Background(), "o", x.Blocks[2], 0, nil, new(int), 100, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
	if _, ok := c.Cached("o", x.Blocks[2]); ok {
		t.Fatal("a corrupt block was cached")
	}
	inBudget(t, c)
}
