package object

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/objstore"
)

// Errors of an Objects implementation, as objstore defines them (possibly
// wrapped), so that object users need no object-store client import.
var (
	ErrObjectExists   = objstore.ErrExists
	ErrObjectNotFound = objstore.ErrNotFound
)

// objstore.Store is the implementation everywhere but in tests.
var _ Objects = objstore.Store(nil)

// Objects is what readers and writers of segment and WAL objects need of an
// object store; objstore.Store satisfies it. Ledger backends depend on this
// interface, not on a concrete client.
type Objects interface {
	// Put writes data under key; with ifNoneMatch it fails (wrapping
	// ErrObjectExists) when the key exists.
	Put(ctx context.Context, key string, data []byte, ifNoneMatch bool) error
	// Get reads length bytes of key from off (length < 0: to the end).
	Get(ctx context.Context, key string, off, length int64) ([]byte, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Lister is what an Objects may offer besides: listing the objects under
// a prefix (objstore.Store does), for sweeps of objects nothing refers to.
type Lister interface {
	List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error)
}

// ObjectRef names a segment object whose index the cache reads: its key,
// size in bytes and the entry-id range its manifest records (checked
// against the object's header).
type ObjectRef struct {
	Key   string
	Size  int64
	First int64
	Last  int64
}

// CacheMetrics are the block cache's metrics, owned by its user (tiered
// storage registers them as mb_offload_cache_*); nil fields get
// unregistered ones.
type CacheMetrics struct {
	Hits    prometheus.Counter
	Misses  prometheus.Counter
	Corrupt prometheus.Counter
	Bytes   prometheus.Gauge
}

func (m *CacheMetrics) fill() {
	c := func(p *prometheus.Counter) {
		if *p == nil {
			*p = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
		}
	}
	c(&m.Hits)
	c(&m.Misses)
	c(&m.Corrupt)
	if m.Bytes == nil {
		m.Bytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "unregistered"})
	}
}

// BlockCache is the block cache shared by readers of object blocks (tiered
// storage's segment objects, cluster mode's WAL objects): blocks are located
// by the caller (object key and block metadata), read with one ranged GET,
// verified, and kept least recently used first out within a byte budget.
type BlockCache struct{ c *blockCache }

// NewBlockCache makes a cache of at most maxBytes over objects.
func NewBlockCache(objects Objects, maxBytes int64, m CacheMetrics) *BlockCache {
	m.fill()
	return &BlockCache{newBlockCache(objects, maxBytes, m)}
}

// Index returns the index of segment object o, reading it (header and
// tail) once and keeping it.
func (b *BlockCache) Index(ctx context.Context, o ObjectRef) (*Index, error) {
	return b.c.index(ctx, o)
}

// Block returns the entries of block b of object key (cached, or read and
// verified; a checksum mismatch is an error wrapping ErrCorrupt), on the
// heap: the caller may keep them.
func (b *BlockCache) Block(ctx context.Context, key string, meta BlockMeta) ([]ledger.Entry, error) {
	return b.c.block(ctx, key, meta)
}

// AppendEntries appends to out copies of the entries of block meta of key
// with ids >= from (cached, or read and verified), while out holds fewer
// than maxEntries and their bytes (*total, updated) stay within maxBytes;
// the first entry of out always goes in. It reports whether a limit
// stopped it. The block itself stays in off-heap memory within the budget:
// readers that copy out keep the cache's memory bounded by the budget.
func (b *BlockCache) AppendEntries(ctx context.Context, key string, meta BlockMeta, from int64, out []ledger.Entry, total *int, maxEntries, maxBytes int) ([]ledger.Entry, bool, error) {
	return b.c.appendEntries(ctx, key, meta, from, out, total, maxEntries, maxBytes)
}

// Prefetch reads block meta of key into the cache in the background (with
// spawn, under timeout) unless it is cached or being read: read-ahead for
// sequential readers. It declines while the blocks being read hold a
// quarter of the budget, and reports whether the block is cached or being
// read now.
func (b *BlockCache) Prefetch(ctx context.Context, key string, meta BlockMeta, timeout time.Duration, spawn func(func()) bool) bool {
	return b.c.prefetch(ctx, key, meta, timeout, spawn)
}

// Size is the bytes of the cached blocks.
func (b *BlockCache) Size() int64 {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return b.c.size
}

// Budget is the cache's byte budget.
func (b *BlockCache) Budget() int64 { return b.c.max }

// Add puts the entries of a block just written into the cache, so that
// tailing readers do not read back what this process wrote.
func (b *BlockCache) Add(key string, meta BlockMeta, entries []ledger.Entry) {
	b.c.mu.Lock()
	b.c.addLocked(blockKey{key, meta.Off}, meta.Len, entries)
	b.c.mu.Unlock()
}

// Cached returns the entries of a block when they are in the cache.
func (b *BlockCache) Cached(key string, meta BlockMeta) ([]ledger.Entry, bool) {
	return b.c.cached(blockKey{key, meta.Off})
}

// Forget drops what is cached of object key.
func (b *BlockCache) Forget(key string) { b.c.forget(key) }
