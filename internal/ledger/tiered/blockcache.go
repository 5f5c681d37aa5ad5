package tiered

import (
	"context"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
	"github.com/messagebus/messagebus/internal/objstore"
)

// BlockCache is the block cache of tiered storage for other readers of
// object blocks (cluster mode's WAL objects): blocks are located by the
// caller (object key and block metadata), read with one ranged GET,
// verified, and kept least recently used first out within a byte budget.
type BlockCache struct{ c *blockCache }

// NewBlockCache makes a cache of at most maxBytes over objects; m may be
// nil (metrics not registered).
func NewBlockCache(objects objstore.Store, maxBytes int64, m *Metrics) *BlockCache {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &BlockCache{newBlockCache(objects, maxBytes, m)}
}

// Block returns the entries of block b of object key (cached, or read and
// verified; a checksum mismatch is an error wrapping object.ErrCorrupt).
func (b *BlockCache) Block(ctx context.Context, key string, meta object.BlockMeta) ([]ledger.Entry, error) {
	return b.c.block(ctx, key, meta)
}

// Add puts the entries of a block just written into the cache, so that
// tailing readers do not read back what this process wrote.
func (b *BlockCache) Add(key string, meta object.BlockMeta, entries []ledger.Entry) {
	b.c.mu.Lock()
	b.c.addLocked(blockKey{key, meta.Off}, meta.Len, entries)
	b.c.mu.Unlock()
}

// Cached returns the entries of a block when they are in the cache.
func (b *BlockCache) Cached(key string, meta object.BlockMeta) ([]ledger.Entry, bool) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	if e, ok := b.c.blocks[blockKey{key, meta.Off}]; ok {
		return e.Value.(*cachedBlock).entries, true
	}
	return nil, false
}

// Forget drops what is cached of object key.
func (b *BlockCache) Forget(key string) { b.c.forget(key) }
