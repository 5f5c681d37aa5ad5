package local

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/pace"
)

// ledgerState is one ledger's data: it lives from registration (or recovery)
// to deletion, across the handles opened and closed on it.
type ledgerState struct {
	s    *Store
	name string
	id   int64

	next   int64   // next entry id to hand out; guarded by journal.mu
	handle *handle // the open handle, nil when closed; guarded by Store.opMu

	mu      sync.Mutex // guards the fields below
	idx     entryIndex
	cache   entryCache
	caching bool  // a handle is open: fill the cache
	first   int64 // FirstEntryID
	last    int64 // LastEntryID: last published (durable) entry
	size    int64 // bytes of the entries in [first, last], lost ones excepted
	count   int64 // number of those entries
	lost    int64 // entries in [first, last] lost to damage
	// savedNext is the high-water mark persisted (cursors.go): every id
	// below it was handed out.
	savedNext int64
	nextDirty bool // marked dirty for the high-water mark since the last flush
	// refused lists ids handed out to appends that failed (disk full):
	// never reused, skipped by Read, and persisted so that recovery does not
	// take their absence from the journal for damage.
	refused      []idRange
	refusedDirty bool
	changed      chan struct{} // made on demand by Changed, closed on publish
	deleted      bool

	cursors   map[string][]byte   // encoded states: loaded at open plus saved since
	dirty     map[string]struct{} // cursors saved since the last flush
	trimDirty bool                // first moved since the last flush
}

func newLedgerState(s *Store, name string, id int64) *ledgerState {
	l := &ledgerState{s: s, name: name, id: id, last: -1, cursors: map[string][]byte{}, dirty: map[string]struct{}{}}
	l.cache.max = s.opts.CacheBytes
	l.cache.total = &s.cacheTotal
	return l
}

// publishLocked makes an entry written by the journal visible.
func (l *ledgerState) publishLocked(it *pending) {
	if it.id > l.idx.next() {
		// The appends between failed (disk full): their ids are not reused.
		l.idx.addLost(it.id)
	}
	l.idx.add(it.id, it.seq, location{off: it.off, size: uint32(len(it.data))})
	if l.caching {
		l.cache.add(it.id, it.data)
		l.cache.lastAdd = l.s.cacheSeq.Add(1)
		if l.s.cacheTotal.Load() > l.s.opts.CacheTotalBytes {
			l.s.kickEvictor()
		}
	}
	l.last = it.id
	l.size += int64(len(it.data))
	l.count++
}

// idRange is the entry ids [from, to).
type idRange struct{ from, to int64 }

// refuse records that the append given id failed.
func (l *ledgerState) refuse(id int64) {
	l.mu.Lock()
	if n := len(l.refused); n > 0 && l.refused[n-1].to == id {
		l.refused[n-1].to++
	} else {
		l.refused = append(l.refused, idRange{id, id + 1})
	}
	l.refusedDirty = true
	l.s.markDirty(l)
	l.mu.Unlock()
}

// refusedIn counts the ids of [from, to) that were refused.
func (l *ledgerState) refusedIn(from, to int64) int64 {
	n := int64(0)
	for _, r := range l.refused {
		n += max(0, min(to, r.to)-max(from, r.from))
	}
	return n
}

// endPublishMarked is endPublish after a group's entries, which marks the
// ledger dirty when its high-water mark is to be persisted.
func (l *ledgerState) endPublishMarked() {
	if l.last >= l.savedNext && !l.nextDirty {
		l.nextDirty = true
		l.s.markDirty(l)
	}
	l.endPublish()
}

// endPublish wakes the waiters of Changed and unlocks l.
func (l *ledgerState) endPublish() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	l.mu.Unlock()
}

// handle is an open ledger: the ledger.Ledger handed to the broker.
type handle struct {
	l      *ledgerState
	closed atomic.Bool // set under journal.mu, so no append slips in after Close
}

var _ ledger.Ledger = (*handle)(nil)

func (h *handle) Name() string { return h.l.name }
func (h *handle) ID() int64    { return h.l.id }

// Append implements ledger.Ledger. Entries larger than MaxEntrySize fail.
// done must not call Close or the Store's Open, Delete or Close: they wait for
// the callbacks to return.
func (h *handle) Append(data []byte, done func(entryID int64, err error)) {
	h.l.s.journal.append(h, data, done)
}

// AppendBackground implements ledger.BackgroundAppender (journal_background.go).
func (h *handle) AppendBackground(data []byte, done func(entryID int64, err error)) {
	h.l.s.journal.appendBackground(h, data, done)
}

// Read implements ledger.Ledger. Tail entries come from the cache; older ones
// are read from the journal and checked against their checksum. Entries lost
// to corruption found at recovery are skipped.
func (h *handle) Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	return h.read(ctx, from, maxEntries, maxBytes, nil)
}

// ReadInto implements ledger.BufferReader.
func (h *handle) ReadInto(ctx context.Context, from int64, maxEntries, maxBytes int, buf *ledger.ReadBuf) ([]ledger.Entry, error) {
	return h.read(ctx, from, maxEntries, maxBytes, buf)
}

// read is Read, with the result's memory from buf when it is not nil.
func (h *handle) read(ctx context.Context, from int64, maxEntries, maxBytes int, buf *ledger.ReadBuf) ([]ledger.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, ledger.ErrClosed
	}
	l := h.l
	l.mu.Lock()
	if from < l.first {
		l.mu.Unlock()
		return nil, ledger.ErrTrimmed
	}
	var (
		out   []ledger.Entry
		reads []diskRead
		total int
		hint  int
	)
	if buf != nil {
		out = buf.Entries[:0]
	} else {
		out = make([]ledger.Entry, 0, max(0, min(int64(maxEntries), l.last-from+1, 256)))
	}
	for id := from; id <= l.last && len(out) < maxEntries; id++ {
		if data, ok := l.cache.get(id); ok {
			if len(out) > 0 && total+len(data) > maxBytes {
				break
			}
			out = append(out, ledger.Entry{ID: id, Data: data})
			total += len(data)
			continue
		}
		var (
			seq uint64
			loc location
		)
		seq, loc, hint = l.idx.get(id, hint)
		if loc.size == lostSize {
			continue
		}
		if len(out) > 0 && total+int(loc.size) > maxBytes {
			break
		}
		seg := l.s.segs.acquire(seq)
		if seg == nil { // cannot happen: a segment is deleted only when no ledger holds entries in it
			l.mu.Unlock()
			releaseReads(l.s.segs, reads)
			return nil, fmt.Errorf("ledger/local: %s: segment %d of entry %d is gone", l.name, seq, id)
		}
		reads = append(reads, diskRead{pos: len(out), seg: seg, loc: loc})
		out = append(out, ledger.Entry{ID: id})
		total += int(loc.size)
	}
	l.mu.Unlock()
	if len(reads) > 0 {
		var err error
		var data *[]byte
		if buf != nil {
			data = &buf.Data
		}
		_, background := pace.FromContext(ctx)
		if out, err = readRecords(l, out, reads, data, background); err != nil {
			return nil, err
		}
	}
	if buf != nil {
		buf.Entries = out
	}
	return out, nil
}

func (h *handle) FirstEntryID() int64 {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.l.first
}

func (h *handle) LastEntryID() int64 {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.l.last
}

func (h *handle) Changed() <-chan struct{} {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if h.l.changed == nil {
		h.l.changed = make(chan struct{})
	}
	return h.l.changed
}

// Trim implements ledger.Ledger. The new first entry is persisted with the
// next cursor flush, and before any segment is deleted.
func (h *handle) Trim(before int64) {
	if h.closed.Load() {
		return
	}
	l := h.l
	l.mu.Lock()
	before = min(before, l.last+1)
	if before <= l.first {
		l.mu.Unlock()
		return
	}
	ids := min(before, l.idx.next()) - l.idx.first
	bytes, entries, droppedRun := l.idx.trim(before)
	l.cache.trim(before)
	l.size -= bytes
	l.count -= entries
	l.lost = max(0, l.lost-max(0, ids-entries-l.refusedIn(l.first, before)))
	l.first = before
	l.trimDirty = true
	// Marked before unlocking: a segment collection that sees the new first
	// entry must also find the ledger dirty, to persist it before deleting.
	l.s.markDirty(l)
	l.mu.Unlock()
	if droppedRun {
		l.s.kickJanitor()
	}
}

func (h *handle) Size() int64 {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.l.size
}

// LostEntries implements ledger.DamageReporter: the entries between
// FirstEntryID and LastEntryID lost to damaged storage, which Read skips.
func (h *handle) LostEntries() int64 {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.l.lost
}

func (h *handle) Entries() int64 {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.l.count
}

// Close implements ledger.Ledger: it waits for the appends made before it,
// persists the cursors and drops the cache.
func (h *handle) Close() error {
	s := h.l.s
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if h.l.handle != h {
		return ledger.ErrClosed
	}
	return s.closeHandlesLocked(h)
}
