package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
)

// cledger is one topic's ledger: the committed index in memory, appends
// handed to the store's WAL writer.
type cledger struct {
	s        *Store
	name     string
	id       int64
	topicKey string
	fence    Fence

	mu           sync.Mutex
	index        []indexEntry // committed, ascending
	next         int64        // next id to hand out
	last         int64        // last committed id
	first        int64
	cum          int64 // bytes of entry data through last
	trimmedBytes int64
	changed      chan struct{}
	pending      int           // appends handed out and not completed
	idle         chan struct{} // closed when pending drops to 0 after Close
	closed       bool
	failed       error         // fenced or a failed commit: every later append fails
	failedCh     chan struct{} // closed when failed is set: in-flight commits stop waiting
	cursors      map[string]*ledger.CursorState
	dirty        map[string][]byte // encoded cursors to checkpoint
	trimDirty    bool
	// committedAt is when the index entry starting at an id was committed by
	// this process (absent: before it, so old enough to rewrite).
	committedAt  map[int64]time.Time
	segGarbage   []string // segment objects trimmed, not yet pending records
	pendingDirty bool     // pending records may exist: the rewrite pass cleans them
	// ckMu orders checkpoints and rewrite swaps of the ledger, so that the
	// index in memory and in etcd agree when either computes its keys.
	ckMu sync.Mutex
	// transient: opened by the rewrite of a topic the broker has not
	// loaded (rewrite_unloaded.go), closed after it unless the broker
	// opened the topic meanwhile. Guarded by s.mu.
	transient bool
}

var _ ledger.Ledger = (*cledger)(nil)

func (l *cledger) Name() string { return l.name }
func (l *cledger) ID() int64    { return l.id }

// Fence is the fencing token the ledger commits under.
func (l *cledger) Fence() Fence { return l.fence }

// Append implements ledger.Ledger.
func (l *cledger) Append(data []byte, done func(int64, error)) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		done(-1, ledger.ErrClosed)
		return
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		done(-1, err)
		return
	}
	id := l.next
	l.next++
	l.pending++
	// Enqueued under l.mu: entries of one ledger reach the writer in id order.
	l.s.w.enqueue(walItem{l: l, e: ledger.Entry{ID: id, Data: data}, done: done})
	l.mu.Unlock()
}

// committed records the block of a committed WAL object and returns the
// callbacks to run (after the lock is released).
func (l *cledger) committed(e indexEntry) {
	l.mu.Lock()
	l.index = append(l.index, e)
	l.committedAt[e.First] = time.Now()
	l.last, l.cum = e.Last, e.Cum
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// completed counts n appends as finished.
func (l *cledger) completed(n int) {
	l.mu.Lock()
	l.pending -= n
	if l.pending == 0 && l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
	l.mu.Unlock()
}

// fail makes every later append fail with err.
func (l *cledger) fail(err error) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
		close(l.failedCh)
	}
	l.mu.Unlock()
}

func (l *cledger) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Read implements ledger.Ledger.
func (l *cledger) Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	for attempt := 0; ; attempt++ {
		out, at, err := l.read(ctx, from, maxEntries, maxBytes)
		// An object deleted under the read (its data rewritten and the WAL
		// object collected, or trimmed): the index in memory has moved on.
		if err != nil && attempt < 3 && errors.Is(err, object.ErrObjectNotFound) && !l.holds(at) {
			continue
		}
		return out, err
	}
}

func (l *cledger) read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, indexEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, indexEntry{}, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, indexEntry{}, ledger.ErrClosed
	}
	if from < l.first {
		l.mu.Unlock()
		return nil, indexEntry{}, ledger.ErrTrimmed
	}
	i := sort.Search(len(l.index), func(i int) bool { return l.index[i].Last >= from })
	idx := l.index[i:]
	l.mu.Unlock()
	var out []ledger.Entry
	bytes := 0
	// add takes the entries of one block; false: the read is full.
	add := func(es []ledger.Entry) bool {
		for _, en := range es {
			if en.ID < from {
				continue
			}
			if len(out) >= maxEntries || (len(out) > 0 && bytes+len(en.Data) > maxBytes) {
				return false
			}
			out = append(out, en)
			bytes += len(en.Data)
		}
		return true
	}
	for _, e := range idx {
		fail := func(err error) ([]ledger.Entry, indexEntry, error) {
			return nil, e, fmt.Errorf("cluster ledger: read %s entries %d-%d: %w", l.name, e.First, e.Last, err)
		}
		if e.Seg == "" {
			es, err := l.s.cache.Block(ctx, e.WAL, e.meta())
			if err != nil {
				return fail(err)
			}
			if !add(es) {
				return out, e, nil
			}
			continue
		}
		x, err := l.s.cache.Index(ctx, e.ref())
		if err != nil {
			return fail(err)
		}
		for b := x.Find(from); b < len(x.Blocks); b++ {
			es, err := l.s.cache.Block(ctx, e.Seg, x.Blocks[b])
			if err != nil {
				return fail(err)
			}
			if !add(es) {
				return out, e, nil
			}
		}
	}
	return out, indexEntry{}, nil
}

// holds reports whether the index in memory still has e.
func (l *cledger) holds(e indexEntry) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.index {
		if x.First == e.First && x.Seg == e.Seg && x.WAL == e.WAL {
			return true
		}
	}
	return false
}

func (l *cledger) FirstEntryID() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *cledger) LastEntryID() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *cledger) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Trim implements ledger.Ledger; the new first entry is checkpointed with
// the cursors, and index entries wholly below it are deleted then (the last
// one is kept: it holds the last id).
func (l *cledger) Trim(before int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	before = min(before, l.last+1)
	if before <= l.first {
		return
	}
	l.first = before
	l.trimmedBytes = l.bytesBefore(before)
	l.trimDirty = true
	i := sort.Search(len(l.index), func(i int) bool { return l.index[i].Last >= before })
	for _, e := range l.index[:i] {
		delete(l.committedAt, e.First)
		if e.Seg != "" {
			l.segGarbage = append(l.segGarbage, e.Seg)
		}
	}
	l.index = l.index[i:]
}

// bytesBefore is the number of bytes of the entries with id < id: exact for
// whole index entries, and within a block when the block is cached (else
// estimated in proportion to the entries).
func (l *cledger) bytesBefore(id int64) int64 {
	if id > l.last {
		return l.cum
	}
	i := sort.Search(len(l.index), func(i int) bool { return l.index[i].Last >= id })
	if i == len(l.index) {
		return l.cum
	}
	e := l.index[i]
	start := e.Cum
	if es, ok := l.s.cache.Cached(e.WAL, e.meta()); ok && e.Seg == "" {
		for _, en := range es {
			start -= int64(len(en.Data))
		}
		for _, en := range es {
			if en.ID >= id {
				break
			}
			start += int64(len(en.Data))
		}
		return start
	}
	prev := int64(0)
	if i > 0 {
		prev = l.index[i-1].Cum
	} else {
		prev = l.trimmedBytes
	}
	if id <= e.First {
		return prev
	}
	return prev + (e.Cum-prev)*(id-e.First)/(e.Last-e.First+1)
}

func (l *cledger) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cum - l.trimmedBytes
}

func (l *cledger) Entries() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last + 1 - l.first
}

// Cursors implements ledger.Ledger.
func (l *cledger) Cursors() map[string]*ledger.CursorState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]*ledger.CursorState, len(l.cursors))
	for n, c := range l.cursors {
		out[n] = c.Clone()
	}
	return out
}

// SaveCursor implements ledger.Ledger; the state is checkpointed within
// CursorFlush.
func (l *cledger) SaveCursor(name string, state *ledger.CursorState) error {
	b, err := state.MarshalBinary()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ledger.ErrClosed
	}
	l.cursors[name] = state.Clone()
	l.dirty[name] = b
	return nil
}

// DeleteCursor implements ledger.Ledger: the key is deleted at once.
func (l *cledger) DeleteCursor(name string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ledger.ErrClosed
	}
	delete(l.cursors, name)
	l.dirty[name] = nil
	l.mu.Unlock()
	return l.checkpoint(context.Background())
}

var _ ledger.CursorSyncer = (*cledger)(nil)

// Close implements ledger.Ledger: appends already made complete, then the
// cursors are checkpointed.
func (l *cledger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var idle chan struct{}
	if l.pending > 0 {
		idle = make(chan struct{})
		l.idle = idle
	}
	l.mu.Unlock()
	if idle != nil {
		l.s.w.kickNow()
		<-idle
	}
	if err := l.failure(); errors.Is(err, errLeaseLost) { // the guard would refuse it, etcd may be out of reach
		l.s.forget(l)
		return err
	}
	err := l.checkpoint(context.Background())
	l.s.forget(l)
	return err
}

func nameFromCursorKey(k keys, id int64, key string) (string, error) {
	n, err := url.PathUnescape(strings.TrimPrefix(key, k.cursorDir(id)))
	if err != nil {
		return "", fmt.Errorf("cluster ledger: cursor key %q: %w", key, err)
	}
	return n, nil
}
