package memory

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/messagebus/messagebus/internal/ledger"
)

// data is a ledger's content; it outlives the handles opened on it.
type data struct {
	name string
	id   int64

	mu      sync.Mutex
	entries [][]byte // ids first..last
	first   int64
	last    int64 // last visible id
	next    int64 // next id to hand out
	size    int64
	changed chan struct{}
	cursors map[string][]byte
}

func (d *data) publish(id int64, buf []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entries = append(d.entries, buf)
	d.last = id
	d.size += int64(len(buf))
	close(d.changed)
	d.changed = make(chan struct{})
}

// memLedger is an open handle on a ledger.
type memLedger struct {
	s      *Store
	d      *data
	closed atomic.Bool
}

func (l *memLedger) Name() string { return l.d.name }
func (l *memLedger) ID() int64    { return l.d.id }

func (l *memLedger) Append(buf []byte, done func(int64, error)) {
	if l.closed.Load() {
		l.s.q.push(item{id: -1, done: done, err: ledger.ErrClosed})
		return
	}
	// The id is handed out and queued under d.mu so that ids reach the queue
	// in order.
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	id := l.d.next
	l.d.next++
	l.s.q.push(item{d: l.d, id: id, buf: buf, done: done})
}

func (l *memLedger) Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.closed.Load() {
		return nil, ledger.ErrClosed
	}
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if from < d.first {
		return nil, ledger.ErrTrimmed
	}
	var out []ledger.Entry
	bytes := 0
	for id := from; id <= d.last && len(out) < maxEntries; id++ {
		buf := d.entries[id-d.first]
		if len(out) > 0 && bytes+len(buf) > maxBytes {
			break
		}
		bytes += len(buf)
		out = append(out, ledger.Entry{ID: id, Data: buf})
	}
	return out, nil
}

func (l *memLedger) FirstEntryID() int64 {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.first
}

func (l *memLedger) LastEntryID() int64 {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.last
}

func (l *memLedger) Changed() <-chan struct{} {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.changed
}

func (l *memLedger) Trim(before int64) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	before = min(before, d.last+1)
	for ; d.first < before; d.first++ {
		d.size -= int64(len(d.entries[0]))
		d.entries[0] = nil
		d.entries = d.entries[1:]
	}
}

func (l *memLedger) Size() int64 {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.size
}

func (l *memLedger) Entries() int64 {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.last + 1 - l.d.first
}

func (l *memLedger) Cursors() map[string]*ledger.CursorState {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	out := make(map[string]*ledger.CursorState, len(l.d.cursors))
	for name, b := range l.d.cursors {
		c := new(ledger.CursorState)
		if err := c.UnmarshalBinary(b); err == nil {
			out[name] = c
		}
	}
	return out
}

func (l *memLedger) SaveCursor(name string, state *ledger.CursorState) error {
	if l.closed.Load() {
		return ledger.ErrClosed
	}
	b, err := state.MarshalBinary()
	if err != nil {
		return err
	}
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	l.d.cursors[name] = b
	return nil
}

func (l *memLedger) DeleteCursor(name string) error {
	if l.closed.Load() {
		return ledger.ErrClosed
	}
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	delete(l.d.cursors, name)
	return nil
}

// Close waits for the appends made before it to complete.
func (l *memLedger) Close() error {
	if l.closed.Swap(true) {
		return ledger.ErrClosed
	}
	l.s.q.barrier()
	l.s.mu.Lock()
	if l.s.open[l.d.name] == l {
		delete(l.s.open, l.d.name)
	}
	l.s.mu.Unlock()
	return nil
}

// SyncCursors implements ledger.CursorSyncer; memory has nothing to sync.
func (l *memLedger) SyncCursors() error { return nil }
