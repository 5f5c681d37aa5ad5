package object

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
)

// blockCache keeps decoded blocks of segment objects, least recently used
// first out, within a byte budget shared by every ledger of the store, and
// the (small) indexes of the objects read.
type blockCache struct {
	objects Objects
	m       CacheMetrics

	mu       sync.Mutex
	max      int64
	size     int64
	lru      *list.List // of *cachedBlock, most recent at the front
	blocks   map[blockKey]*list.Element
	indexes  map[string]*Index
	inflight map[blockKey]*fetch // blocks being read: readers of one wait for it
	// reading is the bytes of the blocks being read: they count in the
	// budget (blocks are evicted to make room before a GET starts).
	reading int64
}

// fetch is a block read in progress; done is closed when entries/err are set.
type fetch struct {
	done    chan struct{}
	entries []ledger.Entry
	err     error
}

type blockKey struct {
	key string
	off int64
}

type cachedBlock struct {
	k       blockKey
	size    int64
	entries []ledger.Entry
}

func newBlockCache(objects Objects, max int64, m CacheMetrics) *blockCache {
	return &blockCache{objects: objects, m: m, max: max, lru: list.New(),
		blocks: map[blockKey]*list.Element{}, indexes: map[string]*Index{}, inflight: map[blockKey]*fetch{}}
}

// index returns the index of object o, reading it (header and tail) once.
func (c *blockCache) index(ctx context.Context, o ObjectRef) (*Index, error) {
	c.mu.Lock()
	x := c.indexes[o.Key]
	c.mu.Unlock()
	if x != nil {
		return x, nil
	}
	tailLen := min(o.Size-HeaderSize, 64<<10)
	tail, err := c.objects.Get(ctx, o.Key, o.Size-tailLen, tailLen)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTrailer(tail[len(tail)-TrailerSize:], o.Size)
	if err != nil {
		return nil, c.corrupt(o.Key, err)
	}
	var idx []byte
	if start := o.Size - tailLen; t.IndexOff >= start {
		idx = tail[t.IndexOff-start : t.IndexOff-start+t.IndexLen]
	} else if idx, err = c.objects.Get(ctx, o.Key, t.IndexOff, t.IndexLen); err != nil {
		return nil, err
	}
	header, err := c.objects.Get(ctx, o.Key, 0, HeaderSize)
	if err != nil {
		return nil, err
	}
	if x, err = DecodeIndex(header, idx, t); err != nil {
		return nil, c.corrupt(o.Key, err)
	}
	if x.Header.First != o.First || x.Header.Last != o.Last {
		return nil, c.corrupt(o.Key, fmt.Errorf("object holds %d-%d, the manifest says %d-%d", x.Header.First, x.Header.Last, o.First, o.Last))
	}
	c.mu.Lock()
	c.indexes[o.Key] = x
	c.mu.Unlock()
	return x, nil
}

func (c *blockCache) corrupt(key string, err error) error {
	c.m.Corrupt.Inc()
	return fmt.Errorf("tiered: object %s: %w", key, err)
}

// block returns the entries of block b of object key, from the cache or
// read with one ranged GET and verified; concurrent readers of the same
// block share one GET.
func (c *blockCache) block(ctx context.Context, key string, b BlockMeta) ([]ledger.Entry, error) {
	k := blockKey{key, b.Off}
	c.mu.Lock()
	if e, ok := c.blocks[k]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		c.m.Hits.Inc()
		return e.Value.(*cachedBlock).entries, nil
	}
	if f, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		c.m.Hits.Inc()
		select {
		case <-f.done:
			return f.entries, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[k] = f
	c.reading += b.Len
	c.evictLocked()
	c.mu.Unlock()
	c.m.Misses.Inc()
	f.entries, f.err = c.read(ctx, key, b)
	c.mu.Lock()
	delete(c.inflight, k)
	c.reading -= b.Len
	if f.err == nil {
		c.addLocked(k, b.Len, f.entries)
	}
	c.mu.Unlock()
	close(f.done)
	return f.entries, f.err
}

// prefetch reads block b into the cache in the background unless it is
// cached or being read (read-ahead for sequential readers), or the blocks
// being read already hold a quarter of the budget: read-ahead never
// crowds out what readers are reading. It reports whether b is cached or
// being read now.
func (c *blockCache) prefetch(ctx context.Context, key string, b BlockMeta, timeout time.Duration, spawn func(func()) bool) bool {
	k := blockKey{key, b.Off}
	c.mu.Lock()
	_, cached := c.blocks[k]
	_, reading := c.inflight[k]
	full := c.reading+b.Len > c.max/4
	c.mu.Unlock()
	if cached || reading {
		return true
	}
	if full {
		return false
	}
	return spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c.block(ctx, key, b) // an error is met again by the reader, which retries
	})
}

func (c *blockCache) read(ctx context.Context, key string, b BlockMeta) ([]ledger.Entry, error) {
	data, err := c.objects.Get(ctx, key, b.Off, b.Len)
	if err != nil {
		return nil, err
	}
	entries, err := DecodeBlock(data, b)
	if err != nil {
		return nil, c.corrupt(key, err)
	}
	return entries, nil
}

func (c *blockCache) addLocked(k blockKey, size int64, entries []ledger.Entry) {
	if _, ok := c.blocks[k]; ok || size > c.max {
		return
	}
	c.blocks[k] = c.lru.PushFront(&cachedBlock{k: k, size: size, entries: entries})
	c.size += size
	c.evictLocked()
}

// evictLocked drops the least recently used blocks until the cached blocks
// and the blocks being read fit in the budget.
func (c *blockCache) evictLocked() {
	for c.size+c.reading > c.max && c.lru.Len() > 0 {
		old := c.lru.Remove(c.lru.Back()).(*cachedBlock)
		delete(c.blocks, old.k)
		c.size -= old.size
	}
	c.m.Bytes.Set(float64(c.size))
}

// forget drops what is cached of object key (deleted).
func (c *blockCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.indexes, key)
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if b := e.Value.(*cachedBlock); b.k.key == key {
			c.lru.Remove(e)
			delete(c.blocks, b.k)
			c.size -= b.size
		}
		e = next
	}
	c.m.Bytes.Set(float64(c.size))
}
