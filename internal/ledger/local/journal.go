package local

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// The journal is the write path, shared by every ledger of the store. Append
// queues an entry (its id assigned on the spot); the committer goroutine takes
// everything queued, encodes it into one buffer, writes it with one call and
// syncs once (group commit: one fsync covers every entry queued while the
// previous one ran); the completer goroutine then makes the group visible
// (index, cache, Changed) and calls the done callbacks in order, while the
// committer already writes the next group.

var errTooLarge = fmt.Errorf("ledger/local: entry larger than %d bytes", MaxEntrySize)

// errAbandoned completes the appends still queued when a test abandons the
// store as a crash would.
var errAbandoned = errors.New("ledger/local: store abandoned")

// pending is one queued operation: an append, a refused append (err set), or
// a barrier (l nil, err nil).
type pending struct {
	l    *ledgerState
	id   int64
	data []byte
	crc  uint32 // dataChecksum(data)
	done func(int64, error)
	err  error
	seq  uint64 // set by the committer: segment and offset of the record
	off  uint32
}

// batch is one group: written and synced together, completed together.
type batch struct {
	items   []pending
	err     error  // the write or sync failed: every append of the group fails
	lastSeq uint64 // active segment after the write
}

const (
	journalOpen = iota
	journalClosing
	journalAbandoned
)

type journal struct {
	fs      vfs.FS
	dir     string
	segSize int64
	log     *slog.Logger
	onSync  func(time.Duration, int, int)
	segs    *segmentSet
	sealed  func() // called after a roll-over: there is a segment to consider deleting

	mu    sync.Mutex
	queue []pending
	err   error // sticky failure: every later append fails with it
	state int
	kick  chan struct{} // the queue became non-empty, or the state changed

	// Owned by the committer (and recovery, before it starts).
	active     *segment
	activeSize int64
	buf        []byte

	free        chan []pending // queue slices for reuse
	completions chan *batch
	published   atomic.Uint64 // every segment below it holds only published records
	exited      chan struct{} // closed when the completer is done
}

func newJournal(fs vfs.FS, dir string, segSize int64, log *slog.Logger, onSync func(time.Duration, int, int), segs *segmentSet) *journal {
	return &journal{
		fs: fs, dir: dir, segSize: segSize, log: log, onSync: onSync, segs: segs,
		kick:        make(chan struct{}, 1),
		free:        make(chan []pending, 4),
		completions: make(chan *batch, 2),
		exited:      make(chan struct{}),
	}
}

func (j *journal) start() {
	j.published.Store(j.active.seq)
	go j.commitLoop()
	go j.completeLoop()
}

func (j *journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// append queues data for ledger h. done is called from the completer, or
// from a new goroutine once the journal is closed.
func (j *journal) append(h *handle, data []byte, done func(int64, error)) {
	var crc uint32
	tooBig := len(data) > MaxEntrySize
	if !tooBig {
		crc = dataChecksum(data) // outside the lock: appenders checksum in parallel
	}
	it := pending{id: -1, done: done}
	j.mu.Lock()
	switch {
	case j.state != journalOpen:
		j.mu.Unlock()
		if done != nil {
			go done(-1, ledger.ErrClosed)
		}
		return
	case h.closed.Load():
		it.err = ledger.ErrClosed
	case j.err != nil:
		it.err = j.err
	case tooBig:
		it.err = errTooLarge
	default:
		it.l, it.id, it.data, it.crc = h.l, h.l.next, data, crc
		h.l.next++
	}
	wasEmpty := len(j.queue) == 0
	j.queue = append(j.queue, it)
	j.mu.Unlock()
	if wasEmpty {
		j.wake()
	}
}

// barrier returns once everything queued before it has completed.
func (j *journal) barrier() {
	ch := make(chan struct{})
	j.mu.Lock()
	if j.state != journalOpen {
		j.mu.Unlock()
		return // closing drains the queue before returning
	}
	wasEmpty := len(j.queue) == 0
	j.queue = append(j.queue, pending{id: -1, done: func(int64, error) { close(ch) }})
	j.mu.Unlock()
	if wasEmpty {
		j.wake()
	}
	<-ch
}

// close writes what is queued, completes it and stops the goroutines.
func (j *journal) close() { j.stop(journalClosing) }

// abandon stops the goroutines as a crash would: what is queued is not
// written (its appends fail). For tests.
func (j *journal) abandon() { j.stop(journalAbandoned) }

func (j *journal) stop(state int) {
	j.mu.Lock()
	if j.state == journalOpen {
		j.state = state
	}
	j.mu.Unlock()
	j.wake()
	<-j.exited
}

func (j *journal) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = fmt.Errorf("ledger/local: journal failed, appends refused until the store is reopened: %w", err)
		j.log.Error("journal write failed; refusing appends", "err", err)
	}
}

func (j *journal) commitLoop() {
	defer close(j.completions)
	for {
		j.mu.Lock()
		for len(j.queue) == 0 && j.state == journalOpen {
			j.mu.Unlock()
			<-j.kick
			j.mu.Lock()
		}
		if len(j.queue) == 0 {
			j.mu.Unlock()
			return
		}
		b := &batch{items: j.queue}
		select {
		case j.queue = <-j.free:
		default:
			j.queue = nil
		}
		failed, state := j.err, j.state
		j.mu.Unlock()

		switch {
		case state == journalAbandoned:
			b.err = errAbandoned
		case failed != nil:
			b.err = failed
		default:
			if err := j.write(b); err != nil {
				j.fail(err)
				b.err = j.err
			}
		}
		b.lastSeq = j.active.seq
		j.completions <- b
	}
}

// write writes and syncs the records of a group, rolling over to a new
// segment when the active one is full.
func (j *journal) write(b *batch) error {
	start := time.Now()
	buf := j.buf[:0]
	entries, bytes := 0, 0
	for i := range b.items {
		it := &b.items[i]
		if it.l == nil || it.err != nil {
			continue
		}
		n := int64(recordHeaderSize + len(it.data))
		if pos := j.activeSize + int64(len(buf)); pos > 0 && pos+n > j.segSize {
			if err := j.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := j.roll(); err != nil {
				return err
			}
		}
		it.seq, it.off = j.active.seq, uint32(j.activeSize+int64(len(buf)))
		buf = appendRecord(buf, it.l.id, it.id, it.data, it.crc)
		entries++
		bytes += len(it.data)
	}
	err := j.flush(buf)
	if cap(buf) <= 64<<20 { // do not pin the memory of an exceptional group
		j.buf = buf[:0]
	} else {
		j.buf = nil
	}
	if err == nil && entries > 0 && j.onSync != nil {
		j.onSync(time.Since(start), entries, bytes)
	}
	return err
}

func (j *journal) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := j.active.file.Write(buf)
	j.activeSize += int64(n)
	if err != nil {
		return fmt.Errorf("write segment %d: %w", j.active.seq, err)
	}
	if err := j.active.file.Sync(); err != nil {
		return fmt.Errorf("sync segment %d: %w", j.active.seq, err)
	}
	return nil
}

// roll makes a new, empty segment the active one. Its directory entry is
// synced before anything is written to it, so a crash cannot lose a segment
// holding acknowledged records.
func (j *journal) roll() error {
	seq := j.active.seq + 1
	name := segmentName(j.dir, seq)
	f, err := j.fs.Create(name)
	if err != nil {
		return fmt.Errorf("create segment %d: %w", seq, err)
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		f.Close()
		return fmt.Errorf("sync journal directory: %w", err)
	}
	j.active, j.activeSize = j.segs.add(seq, f), 0
	if j.sealed != nil {
		j.sealed()
	}
	return nil
}

func (j *journal) completeLoop() {
	defer close(j.exited)
	for b := range j.completions {
		j.complete(b)
	}
}

// complete publishes a written group and calls its callbacks in order.
func (j *journal) complete(b *batch) {
	if b.err == nil {
		var cur *ledgerState
		for i := range b.items {
			it := &b.items[i]
			if it.l == nil || it.err != nil {
				continue
			}
			if it.l != cur {
				if cur != nil {
					cur.endPublish()
				}
				cur = it.l
				cur.mu.Lock()
			}
			cur.publishLocked(it)
		}
		if cur != nil {
			cur.endPublish()
		}
	}
	if b.err == nil {
		// A failed group may have left records in segments it never
		// published: the watermark stays below them, so they are not deleted
		// before a reopen indexes them.
		j.published.Store(b.lastSeq)
	}
	for i := range b.items {
		it := &b.items[i]
		id, err := it.id, it.err
		if err == nil && b.err != nil {
			err = b.err
		}
		if err != nil {
			id = -1
		}
		if it.done != nil {
			it.done(id, err)
		}
		*it = pending{} // drop references to data and callbacks
	}
	if cap(b.items) <= 1<<16 {
		select {
		case j.free <- b.items[:0]:
		default:
		}
	}
}
