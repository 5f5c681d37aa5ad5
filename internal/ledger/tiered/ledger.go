package tiered

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Ledger is a ledger whose oldest entries may live in the object store.
type Ledger struct {
	s     *Store
	inner ledger.Ledger

	mu      sync.Mutex
	man     *manifest // replaced, never modified, once published
	status  ledger.OffloadStatus
	running bool
	timer   *time.Timer // local deletion after the lag
	// stopOffload cancels the running (or last) offload and waits for it.
	stopOffload func()
	lag         *time.Duration  // set by SetDeletionLag; nil: the store's
	deleting    map[string]bool // keys of Deleting being deleted now
	lagSet      bool            // deletions may run (Options.DeferDeletionAtOpen)
	// offloadMu is held by whatever writes or collects the ledger's
	// objects (an offload, the orphan collection at open).
	offloadMu sync.Mutex
}

// SetDeletionLag implements ledger.Offloader.
func (l *Ledger) SetDeletionLag(d time.Duration) {
	l.mu.Lock()
	changed := l.lag == nil && d >= 0 || l.lag != nil && (d < 0 || *l.lag != d) || !l.lagSet
	l.lagSet = true
	if d < 0 {
		l.lag = nil
	} else {
		l.lag = &d
	}
	l.mu.Unlock()
	if changed {
		l.scheduleLocalDeletion()
	}
}

var (
	_ ledger.Ledger    = (*Ledger)(nil)
	_ ledger.Offloader = (*Ledger)(nil)
)

func (l *Ledger) Name() string { return l.inner.Name() }
func (l *Ledger) ID() int64    { return l.inner.ID() }
func (l *Ledger) Append(data []byte, done func(int64, error)) {
	l.s.appends.Touch() // offloads yield while producers publish
	l.inner.Append(data, done)
}

// AppendBackground implements ledger.BackgroundAppender when the local
// ledger does (else it appends normally); it does not count as publishing.
func (l *Ledger) AppendBackground(data []byte, done func(int64, error)) {
	if b, ok := l.inner.(ledger.BackgroundAppender); ok {
		b.AppendBackground(data, done)
		return
	}
	l.inner.Append(data, done)
}

func (l *Ledger) LastEntryID() int64                                { return l.inner.LastEntryID() }
func (l *Ledger) Changed() <-chan struct{}                          { return l.inner.Changed() }
func (l *Ledger) Cursors() map[string]*ledger.CursorState           { return l.inner.Cursors() }
func (l *Ledger) SaveCursor(n string, st *ledger.CursorState) error { return l.inner.SaveCursor(n, st) }
func (l *Ledger) DeleteCursor(name string) error                    { return l.inner.DeleteCursor(name) }

// SyncCursors implements ledger.CursorSyncer when the inner ledger does.
func (l *Ledger) SyncCursors() error {
	if cs, ok := l.inner.(ledger.CursorSyncer); ok {
		return cs.SyncCursors()
	}
	return nil
}

// LostEntries implements ledger.DamageReporter when the inner ledger does.
func (l *Ledger) LostEntries() int64 {
	if d, ok := l.inner.(ledger.DamageReporter); ok {
		return d.LostEntries()
	}
	return 0
}

func (l *Ledger) manifest() *manifest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.man
}

// offloadedBelow returns the objects holding untrimmed entries below the
// local first entry, the only ones read from the object store.
func offloadedBelow(m *manifest, localFirst int64) []objectEntry {
	var out []objectEntry
	for _, o := range m.Objects {
		if o.Last >= m.TrimmedBefore && o.First < localFirst {
			out = append(out, o)
		}
	}
	return out
}

// FirstEntryID implements ledger.Ledger: the first entry kept in either tier.
func (l *Ledger) FirstEntryID() int64 {
	m := l.manifest()
	first := l.inner.FirstEntryID()
	if objs := offloadedBelow(m, first); len(objs) > 0 {
		return max(objs[0].First, m.TrimmedBefore)
	}
	return first
}

// Size implements ledger.Ledger: local bytes plus the bytes of the objects
// whose entries are no longer local.
func (l *Ledger) Size() int64 {
	n := l.inner.Size()
	for _, o := range offloadedBelow(l.manifest(), l.inner.FirstEntryID()) {
		n += o.Bytes
	}
	return n
}

// Entries implements ledger.Ledger, counted as Size.
func (l *Ledger) Entries() int64 {
	n := l.inner.Entries()
	for _, o := range offloadedBelow(l.manifest(), l.inner.FirstEntryID()) {
		n += o.Entries
	}
	return n
}

// OffloadedSize implements ledger.Offloader.
func (l *Ledger) OffloadedSize() int64 {
	m := l.manifest()
	n := int64(0)
	for _, o := range m.Objects {
		n += o.Bytes
	}
	return n
}

// OffloadedEntries implements ledger.Offloader.
func (l *Ledger) OffloadedEntries() int64 {
	n := int64(0)
	for _, o := range l.manifest().Objects {
		n += o.Entries
	}
	return n
}

// Read implements ledger.Ledger: entries below the local first entry come
// from the object store (one object per call at most).
func (l *Ledger) Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	return l.read(ctx, from, maxEntries, maxBytes, nil)
}

// ReadInto implements ledger.BufferReader: local entries are read into buf
// when the local ledger can; offloaded ones as by Read.
func (l *Ledger) ReadInto(ctx context.Context, from int64, maxEntries, maxBytes int, buf *ledger.ReadBuf) ([]ledger.Entry, error) {
	return l.read(ctx, from, maxEntries, maxBytes, buf)
}

func (l *Ledger) read(ctx context.Context, from int64, maxEntries, maxBytes int, buf *ledger.ReadBuf) ([]ledger.Entry, error) {
	for {
		localFirst := l.inner.FirstEntryID()
		if from >= localFirst {
			var (
				out []ledger.Entry
				err error
			)
			if br, ok := l.inner.(ledger.BufferReader); ok && buf != nil {
				out, err = br.ReadInto(ctx, from, maxEntries, maxBytes, buf)
			} else {
				out, err = l.inner.Read(ctx, from, maxEntries, maxBytes)
			}
			if errors.Is(err, ledger.ErrTrimmed) && l.inner.FirstEntryID() > localFirst {
				continue // deleted locally meanwhile: now offloaded
			}
			return out, err
		}
		m := l.manifest()
		objs := offloadedBelow(m, localFirst)
		if len(objs) == 0 || from < max(objs[0].First, m.TrimmedBefore) {
			return nil, ledger.ErrTrimmed
		}
		i := sort.Search(len(objs), func(i int) bool { return objs[i].Last >= from })
		if i == len(objs) {
			continue // past the objects: local (raced with a local deletion)
		}
		out, err := l.readObjectRetrying(ctx, objs[i], from, maxEntries, maxBytes)
		if err != nil && !l.manifest().serves(objs[i].Key) {
			continue // trimmed and deleted meanwhile: ErrTrimmed or the next object
		}
		if err != nil {
			return nil, fmt.Errorf("tiered: %s: read offloaded entry %d: %w", l.Name(), from, err)
		}
		if len(out) == 0 && objs[i].Last+1 < localFirst {
			from = objs[i].Last + 1 // nothing left in that object (lost entries)
			continue
		}
		return out, nil
	}
}

// readObjectRetrying is readObject retried with backoff while the object
// store fails, until ctx ends: a reader of offloaded entries gets them late
// rather than an error. A corrupt object is not retried.
func (l *Ledger) readObjectRetrying(ctx context.Context, o objectEntry, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	backoff := 50 * time.Millisecond
	for {
		opCtx, cancel := context.WithTimeout(ctx, l.s.o.OpTimeout)
		out, err := l.readObject(opCtx, o, from, maxEntries, maxBytes)
		cancel()
		if err == nil {
			return out, nil
		}
		l.s.o.Metrics.readErrors.Inc()
		if errors.Is(err, object.ErrCorrupt) || ctx.Err() != nil || !l.manifest().serves(o.Key) {
			return nil, err
		}
		l.s.log.Warn("read of offloaded entries failed; retrying", "ledger", l.Name(), "entry", from, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// readObject reads entries >= from of object o, block by block.
func (l *Ledger) readObject(ctx context.Context, o objectEntry, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	if !l.s.holds.hold(o.Key) {
		return nil, errGone
	}
	defer l.s.holds.release(o.Key)
	c := l.s.cache
	x, err := c.Index(ctx, o.ref())
	if err != nil {
		return nil, err
	}
	var (
		out   []ledger.Entry
		total int
	)
	for b := x.Find(from); b < len(x.Blocks) && len(out) < maxEntries; b++ {
		// Read-ahead: the next blocks are likely next, as many as fit in
		// a quarter of the budget (more would evict what is being read).
		ahead := int64(0)
		for a := b + 1; a < len(x.Blocks) && a <= b+l.s.o.ReadAheadBlocks; a++ {
			if ahead += x.Blocks[a].Len; ahead > c.Budget()/4 ||
				!c.Prefetch(l.s.ctx, o.Key, x.Blocks[a], l.s.o.OpTimeout, l.s.spawn) {
				break
			}
		}
		// Copies: the cache's blocks stay within its budget, off the heap.
		var full bool
		out, full, err = c.AppendEntries(ctx, o.Key, x.Blocks[b], from, out, &total, maxEntries, maxBytes)
		if err != nil {
			if len(out) > 0 {
				break // serve what was read; the next read retries
			}
			return nil, err
		}
		if full {
			break
		}
	}
	return l.served(out, total), nil
}

func (l *Ledger) served(out []ledger.Entry, total int) []ledger.Entry {
	l.s.o.Metrics.readEntries.Add(float64(len(out)))
	l.s.o.Metrics.readBytes.Add(float64(total))
	return out
}

// Trim implements ledger.Ledger. Objects whose entries are all trimmed
// move to the manifest's Deleting list, durably, and are deleted from the
// object store after the deletion lag (scheduleLocalDeletion).
func (l *Ledger) Trim(before int64) {
	l.inner.Trim(before)
	before = min(before, l.inner.LastEntryID()+1) // as the local ledger does
	l.mu.Lock()
	m := l.man
	if before <= m.TrimmedBefore {
		l.mu.Unlock()
		return
	}
	next := *m
	next.TrimmedBefore = before
	next.Objects = nil
	next.Deleting = append([]objectEntry(nil), m.Deleting...)
	now := time.Now().UnixMilli()
	for _, o := range m.Objects {
		if o.Last < before {
			o.TrimmedAtMs = now
			next.Deleting = append(next.Deleting, o)
		} else {
			next.Objects = append(next.Objects, o)
		}
	}
	// Without objects the trim point is only kept in memory, for an offload
	// in progress (the local ledger persists its own).
	if len(m.Objects) > 0 {
		if err := next.save(l.s.o.Dir); err != nil {
			l.mu.Unlock()
			l.s.log.Error("trim offloaded entries: manifest not saved; retried at the next trim", "ledger", l.Name(), "err", err)
			return
		}
	}
	moved := len(next.Deleting) > len(m.Deleting)
	l.man = &next
	l.mu.Unlock()
	if moved {
		l.scheduleLocalDeletion()
	}
}

// Close implements ledger.Ledger. A running offload is stopped first: the
// next handle of the ledger reads the manifest it left.
func (l *Ledger) Close() error {
	l.halt()
	l.s.mu.Lock()
	if l.s.open[l.Name()] == l {
		delete(l.s.open, l.Name())
	}
	l.s.mu.Unlock()
	return l.inner.Close()
}

// halt stops the running offload (waiting for it) and the deletion timer.
func (l *Ledger) halt() {
	l.mu.Lock()
	stop := l.stopOffload
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	l.stopTimer()
}

func (l *Ledger) stopTimer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// scheduleLocalDeletion trims the local ledger below the offloaded entries
// whose deletion lag has passed, deletes from the store the trimmed objects
// whose lag has passed, and sets a timer for the others.
func (l *Ledger) scheduleLocalDeletion() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lagSet {
		return // the deferral's timer calls again
	}
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if l.s.ctx.Err() != nil {
		return
	}
	now := time.Now().UnixMilli()
	lag := l.deletionLagMs()
	due, objWait := l.dueDeletions(now, lag)
	if len(due) > 0 && !l.s.spawn(func() { l.deleteTrimmed(due) }) {
		for _, o := range due {
			delete(l.deleting, o.Key)
		}
	}
	local := l.inner.FirstEntryID()
	upTo, wait := int64(-1), int64(-1)
	for _, o := range l.man.Objects {
		if o.Last < local {
			continue
		}
		if due := o.OffloadedAtMs + lag; due <= now {
			upTo = o.Last + 1
		} else {
			wait = due - now
			break
		}
	}
	if upTo > local {
		l.inner.Trim(upTo)
	}
	if objWait >= 0 && (wait < 0 || objWait < wait) {
		wait = objWait
	}
	if wait >= 0 {
		l.timer = timerAfter(wait, l.scheduleLocalDeletion)
	}
}
