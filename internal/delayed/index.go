package delayed

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Index is the delayed-delivery index of one subscription: entry ids by due
// time. Its methods are safe for concurrent use, but are meant to be called
// by one owner (the subscription, under its lock); the store's flusher is the
// only other caller.
//
// Every entry is written to the store; the entries with the smallest keys
// are also held in memory, in a window:
//
//   - the window holds every entry whose key (due, id) is below a bound hi,
//     and only those, so its smallest entry is the index's earliest;
//   - it holds at most Options.WindowEntries entries: an add beyond that
//     evicts the largest held (it stays on disk) and lowers hi;
//   - a window loaded from disk spans at most Options.Window of due time
//     from its first entry; an add to a window with nothing beyond it raises
//     hi to now+Window at most;
//   - when it runs empty and disk holds more, the next window is loaded with
//     one range scan.
//
// Memory bound per index, whatever the number of entries delayed: at most
// WindowEntries keys of 16 bytes in blocks at least half full, so at most
// 33 B × WindowEntries + 16 KiB (windowBound; about 280 KiB with the
// defaults), plus, while writes are pending, a batch of at most about
// 128 KiB (returned to Pebble's pool at each flush). The store adds Pebble's
// memtables (2 × MemTableSize at most before writes wait) and block cache
// (CacheSize) once for all indexes: about 16 MiB with the defaults.
type Index struct {
	st        *Store
	name      Name
	id        uint64
	temporary bool

	mu     sync.Mutex
	batch  *pebble.Batch // pending writes; nil when none
	ram    window
	hi     key  // ram holds exactly the entries with key < hi
	beyond bool // entries >= hi may exist (on disk or in batch)
	// count is the number of entries held. It is exact except that re-adding
	// an entry that is on disk only counts it twice; it is exact again when
	// the index drains to its window.
	count      int64
	countDirty bool
	// Popped entries are deleted with one range tombstone per flush: they
	// are always the smallest keys, so [delFrom, delTo] holds nothing else.
	delFrom, delTo key
	delPending     bool
	closed         bool
	kbuf           [dataKeyLen + 1]byte
	kbuf2          [dataKeyLen + 1]byte
}

// Add records entry id, due at atMs (unix milliseconds). Adding an entry
// already held does nothing. It never waits for I/O: the write is appended
// to a batch, committed without fsync when the batch is full and synced by
// the store's flusher.
func (x *Index) Add(id, atMs int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	k := key{at: atMs, id: id}
	if x.delPending && !x.delTo.less(k) {
		// Only a clock going backwards adds below popped entries: keep the
		// delete before the write.
		x.emitDeletes()
	}
	x.writer().Set(appendDataKey(x.kbuf[:0], x.id, k), nil, nil)
	if !x.beyond && !k.less(x.hi) {
		// Nothing is beyond the window: it may grow up to now+Window.
		if lim := satAdd(x.st.opts.now(), x.st.windowMs); x.hi.at < lim {
			x.hi = key{at: lim, id: minKey.id}
		}
	}
	switch {
	case k.less(x.hi):
		if x.ram.insert(k) {
			x.count++
			x.countDirty = true
		}
		if x.ram.len() > x.st.opts.WindowEntries {
			x.hi = x.ram.popMax()
			x.beyond = true
		}
	default:
		x.beyond = true
		x.count++
		x.countDirty = true
	}
	if x.batch.Count() >= flushOps || x.batch.Len() >= flushBytes {
		x.flushLocked()
	}
}

// PopDue removes and returns the ids of up to limit entries due at nowMs or
// earlier, earliest first.
func (x *Index) PopDue(nowMs int64, limit int) []int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	var out []int64
	for len(out) < limit {
		if x.ram.len() == 0 {
			if !x.beyond || !x.refill() || x.ram.len() == 0 {
				break
			}
		}
		var first, last key
		var n int
		out, first, last, n = x.ram.popDue(nowMs, limit-len(out), out)
		if n == 0 {
			break
		}
		if !x.delPending {
			x.delFrom, x.delPending = first, true
		}
		x.delTo = last
		x.count = max(x.count-int64(n), int64(x.ram.len()))
		x.countDirty = true
	}
	if x.batch != nil && (x.batch.Count() >= flushOps || x.batch.Len() >= flushBytes) {
		x.flushLocked()
	}
	return out
}

// Next is the earliest due time, if any entry is held.
func (x *Index) Next() (atMs int64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return 0, false
	}
	if x.ram.len() == 0 && (!x.beyond || !x.refill() || x.ram.len() == 0) {
		return 0, false
	}
	return x.ram.min().at, true
}

// Len is the number of entries held (see count for when it is an estimate).
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return int(max(x.count, int64(x.ram.len())))
}

// Reset forgets every entry.
func (x *Index) Reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.delPending = false
	b := x.writer()
	b.DeleteRange(appendDataPrefix(x.kbuf[:0], x.id), appendDataPrefix(x.kbuf2[:0], x.id+1), nil)
	x.ram.reset()
	x.hi = key{at: satAdd(x.st.opts.now(), x.st.windowMs), id: minKey.id}
	x.beyond = false
	x.count, x.countDirty = 0, true
}

// Close commits pending writes and releases the handle; the entries stay
// for the next handle of the same name, unless the index is temporary.
// Closing twice does nothing.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.flushLocked()
	x.closed = true
	x.ram.reset()
	x.ram.free = nil
	x.mu.Unlock()
	return x.st.release(x, false)
}

// Drop deletes the index (the subscription was removed). Pending writes are
// discarded. It may be called after Close; if another handle opened the same
// index meanwhile, that one keeps it.
func (x *Index) Drop() error {
	x.mu.Lock()
	x.closed = true
	x.delPending = false
	if x.batch != nil {
		x.batch.Close()
		x.batch = nil
	}
	x.ram.reset()
	x.ram.free = nil
	x.mu.Unlock()
	return x.st.release(x, true)
}

// writer returns the pending batch, starting one if needed.
func (x *Index) writer() *pebble.Batch {
	if x.batch == nil {
		x.batch = x.st.db.NewBatch()
	}
	return x.batch
}

// emitDeletes writes the range tombstone of the entries popped since the
// last one.
func (x *Index) emitDeletes() {
	if !x.delPending {
		return
	}
	x.delPending = false
	start := appendDataKey(x.kbuf[:0], x.id, x.delFrom)
	end := append(appendDataKey(x.kbuf2[:0], x.id, x.delTo), 0) // the next key after delTo
	x.writer().DeleteRange(start, end, nil)
}

func (x *Index) flush() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.flushLocked()
	}
}

// flushLocked commits the pending writes without fsync.
func (x *Index) flushLocked() {
	x.emitDeletes()
	if x.countDirty {
		x.writer().Set(countKey(x.id), binary.BigEndian.AppendUint64(x.kbuf[:0], uint64(max(x.count, 0))), nil)
		x.countDirty = false
	}
	if x.batch == nil {
		return
	}
	b := x.batch
	x.batch = nil
	if err := x.st.commit(b); err != nil {
		x.st.log.Error("write delayed index", "topic", x.name.Topic, "subscription", x.name.Subscription, "err", err)
	}
}

// refill loads the next window from disk into the empty window. It reports
// false when the disk could not be read.
func (x *Index) refill() bool {
	x.flushLocked()
	lower := appendDataKey(nil, x.id, x.hi)
	upper := appendDataPrefix(nil, x.id+1)
	it, err := x.st.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		x.st.log.Error("read delayed index", "topic", x.name.Topic, "subscription", x.name.Subscription, "err", err)
		return false
	}
	defer it.Close()
	var limit int64
	last, loaded := x.hi, 0
	for valid := it.First(); valid; valid = it.Next() {
		_, k, ok := decodeDataKey(it.Key())
		if !ok {
			continue
		}
		if loaded == 0 {
			limit = satAdd(k.at, x.st.windowMs)
		}
		if loaded >= x.st.opts.WindowEntries || k.at >= limit {
			x.hi, x.beyond = k, true
			return true
		}
		x.ram.appendMax(k)
		last = k
		loaded++
	}
	if err := it.Error(); err != nil {
		x.st.log.Error("read delayed index", "topic", x.name.Topic, "subscription", x.name.Subscription, "err", err)
		return false
	}
	// Everything is in memory: the window may extend past the last entry.
	x.beyond = false
	if loaded > 0 {
		x.hi = key{at: last.at, id: last.id + 1}
		if last.id == math.MaxInt64 {
			x.hi = key{at: satAdd(last.at, 1), id: minKey.id}
		}
	}
	if lim := satAdd(x.st.opts.now(), x.st.windowMs); x.hi.at < lim {
		x.hi = key{at: lim, id: minKey.id}
	}
	x.count, x.countDirty = int64(x.ram.len()), true
	return true
}
