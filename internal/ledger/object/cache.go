package object

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
)

// blockCache keeps decoded blocks of segment objects, least recently used
// first out, within a byte budget shared by every ledger of the store, and
// the (small) indexes of the objects read.
//
// Blocks read for copying readers (tiered storage's, AppendEntries and
// Prefetch) are kept in buffers outside the Go heap (mapBuf): the budget
// then bounds the memory itself, where heap buffers would let the
// collector's heap goal (twice the live heap) and evicted blocks awaiting
// collection take RSS to two or three times the budget. Such a block is
// only read by pinned readers (refs) that copy entries out; an evicted
// block's buffer goes back to a free list (reused by the next fetch, whose
// pages are then already mapped) or to the system once its last reader
// unpins. Blocks read through Block or given to Add live on the heap, as
// their users keep the entries.
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
	// free holds the off-heap buffers of evicted blocks for reuse; their
	// bytes (freeBytes) count in the budget too.
	free      [][]byte
	freeBytes int64
	// mapped is the bytes of off-heap buffers (cached, being read, free,
	// or held by readers of evicted blocks); maps counts mappings made.
	mapped int64
	maps   int
}

// fetch is a block read in progress; done is closed when err is set.
type fetch struct {
	done chan struct{}
	err  error
}

type blockKey struct {
	key string
	off int64
}

type cachedBlock struct {
	k       blockKey
	size    int64
	entries []ledger.Entry
	buf     []byte // off-heap memory the entries alias; nil: heap entries
	refs    int    // pinned readers
	evicted bool   // out of the cache: buf is released at the last unpin
}

// getInto is what an object store offers to read a range into a caller's
// buffer (objstore.S3); others are read with Get and copied.
type getInto interface {
	GetInto(ctx context.Context, key string, off int64, buf []byte) error
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

// pin returns block b of object key pinned (unpin it after use), from the
// cache or read with one ranged GET and verified; concurrent readers of the
// same block share one GET. offHeap reads a missing block into an off-heap
// buffer, whose entries may only be used while pinned.
func (c *blockCache) pin(ctx context.Context, key string, b BlockMeta, offHeap bool) (*cachedBlock, error) {
	k := blockKey{key, b.Off}
	waited := false
	for {
		c.mu.Lock()
		if e, ok := c.blocks[k]; ok {
			c.lru.MoveToFront(e)
			cb := e.Value.(*cachedBlock)
			cb.refs++
			c.mu.Unlock()
			if !waited {
				c.m.Hits.Inc()
			}
			return cb, nil
		}
		f, ok := c.inflight[k]
		if !ok {
			return c.fetchLocked(ctx, k, b, offHeap)
		}
		c.mu.Unlock()
		if !waited {
			c.m.Hits.Inc()
			waited = true
		}
		select {
		case <-f.done:
			if f.err != nil {
				return nil, f.err
			}
			// Cached now (or evicted already, then read again).
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// fetchLocked reads block b (key k) with c.mu held, which it releases, and
// returns it pinned.
func (c *blockCache) fetchLocked(ctx context.Context, k blockKey, b BlockMeta, offHeap bool) (*cachedBlock, error) {
	f, buf, size := c.startLocked(k, b, offHeap)
	c.mu.Unlock()
	return c.finish(ctx, k, b, f, buf, size, true)
}

// startLocked registers the read of block b (key k): readers of it wait
// for it, and its bytes count in the budget from now on.
func (c *blockCache) startLocked(k blockKey, b BlockMeta, offHeap bool) (*fetch, []byte, int64) {
	f := &fetch{done: make(chan struct{})}
	c.inflight[k] = f
	size := b.Len // the budget counts off-heap buffers whole
	if offHeap {
		size = pageRound(b.Len)
	}
	buf := c.makeRoomLocked(size, offHeap)
	if offHeap && buf == nil {
		buf = c.mapLocked(size) // nil if it fails: read on the heap
	}
	if buf != nil {
		buf = buf[:b.Len]
	}
	return f, buf, size
}

// finish reads the block a startLocked registered, caches it and returns
// it (pinned when pin is set).
func (c *blockCache) finish(ctx context.Context, k blockKey, b BlockMeta, f *fetch, buf []byte, size int64, pin bool) (*cachedBlock, error) {
	c.m.Misses.Inc()
	entries, err := c.read(ctx, k.key, b, buf)
	c.mu.Lock()
	delete(c.inflight, k)
	c.reading -= size
	var cb *cachedBlock
	if err == nil {
		if buf == nil {
			size = b.Len
		}
		cb = &cachedBlock{k: k, size: size, entries: entries, buf: buf}
		if pin {
			cb.refs = 1
		}
		c.addBlockLocked(cb)
		if !pin && cb.evicted && buf != nil {
			c.releaseLocked(buf) // too large for the budget, and nobody reads it
		}
	} else if buf != nil {
		c.releaseLocked(buf)
	}
	f.err = err
	c.mu.Unlock()
	close(f.done)
	return cb, err
}

// abandon ends a registered read that did not start; its waiters read the
// block themselves.
func (c *blockCache) abandon(k blockKey, f *fetch, buf []byte, size int64) {
	c.mu.Lock()
	delete(c.inflight, k)
	c.reading -= size
	if buf != nil {
		c.releaseLocked(buf)
	}
	c.mu.Unlock()
	close(f.done)
}

// unpin ends a reader's use of cb.
func (c *blockCache) unpin(cb *cachedBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cb.refs--; cb.refs == 0 && cb.evicted && cb.buf != nil {
		c.releaseLocked(cb.buf)
		cb.buf, cb.entries = nil, nil
	}
}

// block returns the entries of block b of object key, on the heap (copied
// when the cached block is off the heap).
func (c *blockCache) block(ctx context.Context, key string, b BlockMeta) ([]ledger.Entry, error) {
	cb, err := c.pin(ctx, key, b, false)
	if err != nil {
		return nil, err
	}
	defer c.unpin(cb)
	if cb.buf == nil {
		return cb.entries, nil
	}
	out, _ := copyEntries(nil, cb.entries, len(cb.entries), 0, 1<<62)
	return out, nil
}

// appendEntries appends to out copies of the entries of block b with ids
// >= from, while out holds fewer than maxEntries and their bytes (*total,
// updated) stay within maxBytes (the first entry of out always goes in). It
// reports whether a limit stopped it.
func (c *blockCache) appendEntries(ctx context.Context, key string, b BlockMeta, from int64, out []ledger.Entry, total *int, maxEntries, maxBytes int) ([]ledger.Entry, bool, error) {
	cb, err := c.pin(ctx, key, b, true)
	if err != nil {
		return out, false, err
	}
	defer c.unpin(cb)
	es := cb.entries
	es = es[sort.Search(len(es), func(i int) bool { return es[i].ID >= from }):]
	n := len(out)
	out, full := copyEntries(out, es, maxEntries, *total, maxBytes)
	for _, e := range out[n:] {
		*total += len(e.Data)
	}
	return out, full, nil
}

// copyEntries appends copies of es to out (in one allocation) within the
// limits of appendEntries, total being the bytes out holds.
func copyEntries(out, es []ledger.Entry, maxEntries, total, maxBytes int) ([]ledger.Entry, bool) {
	n, bytes, full := 0, 0, false
	for _, e := range es {
		if len(out)+n >= maxEntries || (len(out)+n > 0 && total+bytes+len(e.Data) > maxBytes) {
			full = true
			break
		}
		n++
		bytes += len(e.Data)
	}
	mem := make([]byte, bytes)
	for _, e := range es[:n] {
		k := copy(mem, e.Data)
		out = append(out, ledger.Entry{ID: e.ID, Data: mem[:k:k]})
		mem = mem[k:]
	}
	return out, full
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
	if cached || reading {
		c.mu.Unlock()
		return true
	}
	// Registered before the goroutine starts, so that the next prefetch
	// sees it among the blocks being read.
	if c.reading+pageRound(b.Len) > c.max/4 {
		c.mu.Unlock()
		return false
	}
	f, buf, size := c.startLocked(k, b, true)
	c.mu.Unlock()
	ok := spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c.finish(ctx, k, b, f, buf, size, false) // an error is met again by the reader, which retries
	})
	if !ok {
		c.abandon(k, f, buf, size)
	}
	return ok
}

// read reads and verifies block b of key, into buf when it is not nil.
func (c *blockCache) read(ctx context.Context, key string, b BlockMeta, buf []byte) ([]ledger.Entry, error) {
	data := buf
	if buf == nil {
		var err error
		if data, err = c.objects.Get(ctx, key, b.Off, b.Len); err != nil {
			return nil, err
		}
	} else if g, ok := c.objects.(getInto); ok {
		if err := g.GetInto(ctx, key, b.Off, buf); err != nil {
			return nil, err
		}
	} else {
		got, err := c.objects.Get(ctx, key, b.Off, b.Len)
		if err != nil {
			return nil, err
		}
		if len(got) != len(buf) {
			return nil, c.corrupt(key, fmt.Errorf("block at %d: read %d bytes of %d", b.Off, len(got), len(buf)))
		}
		copy(buf, got)
	}
	entries, err := DecodeBlock(data, b)
	if err != nil {
		return nil, c.corrupt(key, err)
	}
	return entries, nil
}

// offHeapPage rounds off-heap buffers (mappings are whole pages).
var offHeapPage = int64(os.Getpagesize())

func pageRound(n int64) int64 { return (n + offHeapPage - 1) / offHeapPage * offHeapPage }

// makeRoomLocked counts a block of size bytes being read and evicts until
// it fits in the budget. For an off-heap block it returns a free buffer of
// that size (blocks are mostly of the configured block size), possibly the
// one of the block it evicted, to be reused; nil: none.
func (c *blockCache) makeRoomLocked(size int64, offHeap bool) []byte {
	var buf []byte
	if offHeap {
		for i, b := range c.free {
			if int64(cap(b)) == size {
				c.free[i] = c.free[len(c.free)-1]
				c.free = c.free[:len(c.free)-1]
				c.freeBytes -= size
				buf = b
				break
			}
		}
	}
	c.reading += size
	c.evictLocked(func(old []byte) bool {
		if offHeap && buf == nil && int64(cap(old)) == size {
			buf = old
			return true
		}
		return false
	})
	return buf
}

func (c *blockCache) unmapFreeLocked(i int) {
	b := c.free[i]
	c.free[i] = c.free[len(c.free)-1]
	c.free[len(c.free)-1] = nil
	c.free = c.free[:len(c.free)-1]
	c.freeBytes -= int64(cap(b))
	c.unmapLocked(b)
}

// mapLocked maps an off-heap buffer of size bytes (nil if that fails).
func (c *blockCache) mapLocked(size int64) []byte {
	b := mapBuf(int(size))
	if b != nil {
		c.mapped += size
		c.maps++
	}
	return b
}

func (c *blockCache) unmapLocked(b []byte) {
	c.mapped -= int64(cap(b))
	unmapBuf(b[:cap(b)])
}

// releaseLocked keeps buf for reuse when it fits in the budget, else
// returns it to the system.
func (c *blockCache) releaseLocked(buf []byte) {
	buf = buf[:cap(buf)]
	if c.size+c.reading+c.freeBytes+int64(len(buf)) <= c.max {
		c.free = append(c.free, buf)
		c.freeBytes += int64(len(buf))
		return
	}
	c.unmapLocked(buf)
}

func (c *blockCache) addLocked(k blockKey, size int64, entries []ledger.Entry) {
	if _, ok := c.blocks[k]; ok {
		return
	}
	c.addBlockLocked(&cachedBlock{k: k, size: size, entries: entries})
}

// addBlockLocked caches cb (a block larger than the budget is not cached:
// it is released at its last unpin).
func (c *blockCache) addBlockLocked(cb *cachedBlock) {
	if _, ok := c.blocks[cb.k]; ok || cb.size > c.max {
		cb.evicted = true
		return
	}
	c.blocks[cb.k] = c.lru.PushFront(cb)
	c.size += cb.size
	c.evictLocked(nil)
}

// evictLocked drops free buffers, then the least recently used blocks,
// until the cached blocks, the blocks being read and the free buffers fit
// in the budget. An evicted block's off-heap buffer goes to take if it
// wants it (nil: none does), else it is released.
func (c *blockCache) evictLocked(take func(old []byte) bool) {
	for c.size+c.reading+c.freeBytes > c.max {
		if n := len(c.free); n > 0 {
			c.unmapFreeLocked(n - 1)
			continue
		}
		if c.lru.Len() == 0 {
			break
		}
		if old := c.dropLocked(c.lru.Back()); old != nil && (take == nil || !take(old)) {
			c.releaseLocked(old)
		}
	}
	c.m.Bytes.Set(float64(c.size))
}

// dropLocked takes the block of element e out of the cache and returns its
// off-heap buffer when no reader holds it (the caller releases it); a
// pinned block's buffer is released at its last reader's unpin.
func (c *blockCache) dropLocked(e *list.Element) []byte {
	cb := c.lru.Remove(e).(*cachedBlock)
	delete(c.blocks, cb.k)
	c.size -= cb.size
	cb.evicted = true
	if cb.refs > 0 || cb.buf == nil {
		return nil
	}
	buf := cb.buf
	cb.buf, cb.entries = nil, nil
	return buf
}

// cached returns the entries of a cached block (heap copies when it is off
// the heap).
func (c *blockCache) cached(k blockKey) ([]ledger.Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.blocks[k]
	if !ok {
		return nil, false
	}
	cb := e.Value.(*cachedBlock)
	if cb.buf == nil {
		return cb.entries, true
	}
	out, _ := copyEntries(nil, cb.entries, len(cb.entries), 0, 1<<62)
	return out, true
}

// forget drops what is cached of object key (deleted).
func (c *blockCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.indexes, key)
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if e.Value.(*cachedBlock).k.key == key {
			if old := c.dropLocked(e); old != nil {
				c.releaseLocked(old)
			}
		}
		e = next
	}
	c.m.Bytes.Set(float64(c.size))
}
