package local

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
//
// Segments are preallocated: the next roll-over renames a spare file into
// place, either a segment the janitor would have deleted (recycled, as
// Pebble does with its WAL) or, when there is none, a file the preparer
// goroutine zero-fills to the segment size and syncs once the active segment
// has some data (a store that started in a plain file moves into the spare as
// soon as it is ready). Writing into allocated, initialized blocks leaves fdatasync nothing
// but the data to flush; appending also makes it commit the file's new size
// (a filesystem journal transaction), which on ext4 here doubles its time
// (docs/benchmarks.md). Each write into a spare ends with a zero header,
// the end of the records. Recovery (recovery.go, scan.go) takes a record only
// when its header checksum matches under the journal's salt and names the
// segment, so a recycled segment's old records and client payloads that look
// like records are never taken; the last segment is sealed where its records
// end; the records a recycled segment still holds belong to entries trimmed or
// deleted before it was recycled (their trim points and ledger removals are
// persisted first; ledger ids are never reused).

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
	salt    uint64 // the journal's salt (record.go), set before start
	seed    uint32 // saltSeed(salt)
	log     *slog.Logger
	onSync  func(time.Duration, int, int)
	segs    *segmentSet
	sealed  func() // called after a roll-over: there is a segment to consider deleting

	mu    sync.Mutex
	queue []pending
	bg    background // appends of background work waiting for a group commit (journal_background.go)
	err   error      // every later append fails with it: a sticky failure, or the disk is full
	state int
	kick  chan struct{} // the queue became non-empty, or the state changed
	space diskState     // disk-full state (diskspace.go)

	// Owned by the committer (and recovery, before it starts).
	active         *segment
	activeSize     int64
	activePrealloc bool  // active was a spare: its space is allocated and written
	prevEnd        int64 // where the records of the segment before active end
	nextKick       int64 // activeSize at which the preparer is asked (again) for a spare
	rolledAt       time.Time
	buf            []byte

	prealloc       bool
	spareMu        sync.Mutex
	spare          spareFile    // a ready spare (zero-filled, synced); f nil while there is none
	spareSeq       atomic.Int64 // numbers spare file names
	prepKick       chan struct{}
	prepStop       chan struct{}
	stopPrep       sync.Once
	prepExited     chan struct{}
	onSpare        func() // tests
	onRoll         func(source string)
	fullBy         atomic.Int64  // unix ns: when the active segment will be full at its write rate
	lastPrep       time.Duration // preparer's: how long the last zero-fill took
	noZeroFill     bool          // tests
	alwaysZeroFill bool          // tests

	free        chan []pending // queue slices for reuse
	completions chan *batch
	published   atomic.Uint64 // every segment below it holds only published records
	exited      chan struct{} // closed when the completer is done
}

func newJournal(fs vfs.FS, dir string, segSize int64, prealloc bool, log *slog.Logger, onSync func(time.Duration, int, int), onRoll func(string), segs *segmentSet) *journal {
	return &journal{
		fs: fs, dir: dir, segSize: segSize, prealloc: prealloc, log: log, onSync: onSync, onRoll: onRoll, segs: segs,
		kick:        make(chan struct{}, 1),
		free:        make(chan []pending, 4),
		completions: make(chan *batch, 2),
		exited:      make(chan struct{}),
		prepKick:    make(chan struct{}, 1),
		prepStop:    make(chan struct{}),
		prepExited:  make(chan struct{}),
	}
}

func (j *journal) start() {
	j.published.Store(j.active.seq)
	go j.commitLoop()
	go j.completeLoop()
	if j.prealloc && !j.noZeroFill {
		go j.prepareLoop()
	} else {
		close(j.prepExited)
	}
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
	j.enqueue(h, data, done, false)
}

// enqueue queues an append: into the queue, or, for background work, into
// j.bg until a group commit takes it.
func (j *journal) enqueue(h *handle, data []byte, done func(int64, error), background bool) {
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
	if background && it.err == nil {
		j.bg.add(j, it)
		j.mu.Unlock()
		return
	}
	j.takeBackground() // the background appends queued earlier go first: per-ledger order
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
	j.takeBackground()
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
	j.takeBackground()
	j.mu.Unlock()
	j.wake()
	<-j.exited
	if state == journalClosing {
		j.certify()
	}
	j.stopPrep.Do(func() { close(j.prepStop) })
	<-j.prepExited
	if sp := j.takeSpare(); sp.f != nil {
		sp.f.Close() // stays on disk: the next Open reuses it
	}
}

// certify ends a clean close with an empty write: recovery treats only the
// last write of the last segment as possibly torn, and this one holds nothing.
// Called once the committer has exited.
func (j *journal) certify() {
	if j.err != nil || j.space.sealed || j.activeSize <= segmentHeaderSize {
		return // nothing written since the last roll, or nothing to write into
	}
	buf := appendRecord(j.buf[:0], j.seed, true, j.active.seq, controlLedger, 0, nil, dataChecksum(nil))
	if err := j.flush(buf); err != nil {
		j.log.Warn("journal: could not mark the clean close", "err", err)
	}
}

// fail records a failed write or sync and returns the error its group fails
// with. Lack of space is a state the journal leaves by itself (diskspace.go);
// any other failure refuses appends until the store is reopened.
func (j *journal) fail(err error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if isNoSpace(err) && !j.space.stuck {
		j.failNoSpace(err)
		return j.err
	}
	if !j.space.stuck {
		j.space.stuck = true
		j.err = fmt.Errorf("ledger/local: journal failed, appends refused until the store is reopened: %w", err)
		j.log.Error("journal write failed; refusing appends", "err", err)
	}
	return j.err
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
			seg, size := j.active, j.activeSize
			err := j.rollIfSealed()
			if err == nil {
				err = j.write(b)
			}
			if err == nil {
				j.noteWritten(seg, size)
			} else if b.err = j.fail(err); errors.Is(b.err, ledger.ErrDiskFull) {
				j.sealAfterFailure(seg, size)
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
	// Sized for the whole group up front: a group larger than any before
	// would otherwise regrow (and copy) the buffer several times.
	need := segmentHeaderSize + recordHeaderSize // a roll's header, the end mark
	for i := range b.items {
		need += recordHeaderSize + len(b.items[i].data)
	}
	if cap(j.buf) < need && need <= 64<<20 {
		j.buf = make([]byte, 0, need)
	}
	buf := j.buf[:0]
	entries, bytes := 0, 0
	group := true // the next record starts a write
	for i := range b.items {
		it := &b.items[i]
		if it.l == nil || it.err != nil {
			continue
		}
		if entries == 0 && j.prealloc && !j.activePrealloc && j.hasSpare() {
			// Started in a plain file (a new store, or no spare ready at
			// the last roll-over): move to preallocated space as soon as
			// there is some and something to write.
			if err := j.roll(); err != nil {
				return err
			}
		}
		if j.activeSize == 0 && len(buf) == 0 {
			buf = appendSegmentHeader(buf, j.active.seq, j.salt, j.prevEnd)
		}
		n := int64(recordHeaderSize + len(it.data))
		if pos := j.activeSize + int64(len(buf)); pos > segmentHeaderSize && pos+n > j.segSize {
			if err := j.flush(buf); err != nil {
				return err
			}
			if err := j.roll(); err != nil {
				return err
			}
			buf = appendSegmentHeader(buf[:0], j.active.seq, j.salt, j.prevEnd)
			group = true
		}
		it.seq, it.off = j.active.seq, uint32(j.activeSize+int64(len(buf)))
		buf = appendRecord(buf, j.seed, group, it.seq, it.l.id, it.id, it.data, it.crc)
		group = false
		entries++
		bytes += len(it.data)
	}
	err := j.flush(buf)
	if j.prealloc && j.activeSize >= j.nextKick {
		// Prepare the next segment once this one is being written to in
		// earnest: a store that stays nearly empty (a test, an idle broker)
		// never pays for a segment's worth of zeros. At this rate the
		// segment is full by fullBy.
		if elapsed := time.Since(j.rolledAt); elapsed > 0 {
			rest := float64(elapsed) * float64(j.segSize-j.activeSize) / float64(j.activeSize)
			j.fullBy.Store(time.Now().Add(time.Duration(rest)).UnixNano())
		}
		kick(j.prepKick)
		// Asked again further on: a spare skipped as too slow for this
		// rate may be worth it once the rate drops.
		j.nextKick = j.activeSize + j.kickStep()
	}
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
	end := 0
	if j.activePrealloc {
		// A recycled segment holds old records beyond the new ones: a zero
		// header after each write marks where the new ones end (the next
		// write overwrites it).
		end = recordHeaderSize
		buf = append(buf, zeroHeader[:]...)
	}
	n, err := j.active.file.WriteAt(buf, j.activeSize)
	j.activeSize += int64(min(n, len(buf)-end))
	if err != nil {
		return fmt.Errorf("write segment %d: %w", j.active.seq, err)
	}
	if err := j.active.file.Sync(); err != nil {
		return fmt.Errorf("sync segment %d: %w", j.active.seq, err)
	}
	return nil
}

// roll makes a new, empty segment the active one: the spare when one is
// ready, else a new file. Its directory entry is synced before anything is
// written to it, so a crash cannot lose a segment holding acknowledged records.
func (j *journal) roll() error {
	seq := j.active.seq + 1
	name := segmentName(j.dir, seq)
	sp := j.takeSpare()
	f := sp.f
	if f != nil {
		if err := j.fs.Rename(sp.name, name); err != nil {
			j.log.Warn("journal spare segment not usable; creating a new one", "err", err)
			f.Close()
			f = nil
		}
	}
	prealloc := f != nil
	source := SegmentZeroFilled
	if sp.recycled {
		source = SegmentRecycled
	}
	if f == nil {
		source = SegmentAppended
		var err error
		if f, err = j.fs.Create(name); err != nil {
			return fmt.Errorf("create segment %d: %w", seq, err)
		}
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		f.Close()
		return fmt.Errorf("sync journal directory: %w", err)
	}
	j.prevEnd = j.activeSize
	j.active, j.activeSize, j.activePrealloc, j.nextKick = j.segs.add(seq, f), 0, prealloc, j.kickStep()
	j.rolledAt = time.Now()
	if j.onRoll != nil {
		j.onRoll(source)
	}
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
					cur.endPublishMarked()
				}
				cur = it.l
				cur.mu.Lock()
			}
			cur.publishLocked(it)
		}
		if cur != nil {
			cur.endPublishMarked()
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
		if err != nil && it.l != nil && err != errAbandoned {
			it.l.refuse(it.id) // handed out, not stored: never reused
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

// spareSuffix ends the names of preallocated files waiting to become the
// next segment; recovery reuses a complete one. Each has a name of its own, so
// that a new spare is never created under the name of one being renamed.
const spareSuffix = ".prealloc"

// spareFile is a ready spare and its path.
type spareFile struct {
	f        vfs.File
	name     string
	recycled bool // a dead segment, not zero-filled
}

// Where a new segment came from, for Options.OnRoll.
const (
	SegmentRecycled   = "recycled"
	SegmentZeroFilled = "zero_filled"
	SegmentAppended   = "appended" // a new file, not preallocated
)

func (j *journal) hasSpare() bool {
	j.spareMu.Lock()
	defer j.spareMu.Unlock()
	return j.spare.f != nil
}

func (j *journal) takeSpare() spareFile {
	j.spareMu.Lock()
	defer j.spareMu.Unlock()
	sp := j.spare
	j.spare = spareFile{}
	return sp
}

// offerSpare makes sp the spare unless there is one already, and reports
// whether it did.
func (j *journal) offerSpare(sp spareFile) bool {
	j.spareMu.Lock()
	if j.spare.f != nil {
		j.spareMu.Unlock()
		return false
	}
	j.spare = sp
	j.spareMu.Unlock()
	if j.onSpare != nil {
		j.onSpare()
	}
	return true
}

// Spare files are named zeroed-N.prealloc or recycled-N.prealloc, N unique.
const (
	zeroedPrefix   = "zeroed-"
	recycledPrefix = "recycled-"
)

// newSpareName returns a path for a new spare; each is used once.
func (j *journal) newSpareName(prefix string) string {
	return filepath.Join(j.dir, fmt.Sprintf("%s%d%s", prefix, j.spareSeq.Add(1), spareSuffix))
}

// zeroHeader ends the records of a preallocated segment.
var zeroHeader [recordHeaderSize]byte

// prepareLoop makes a spare when asked and there is none, until the journal
// stops.
func (j *journal) prepareLoop() {
	defer close(j.prepExited)
	for {
		select {
		case <-j.prepKick:
		case <-j.prepStop:
			return
		}
		if j.hasSpare() || (!j.alwaysZeroFill && !worthZeroFill(time.Now(), j.lastPrep, j.fullBy.Load())) || !j.spareFits() {
			continue
		}
		name := j.newSpareName(zeroedPrefix)
		start := time.Now()
		f, err := j.prepare(name)
		if err == nil {
			j.lastPrep = time.Since(start)
		}
		if err == nil && !j.offerSpare(spareFile{f: f, name: name}) {
			f.Close()
			err = errHaveSpare
		}
		if err != nil {
			if isNoSpace(err) {
				j.skipSpare(err)
			} else if !errors.Is(err, errStopped) && !errors.Is(err, errHaveSpare) {
				j.log.Warn("journal segment preallocation failed; the next segment is appended to", "err", err)
			}
			j.fs.Remove(name) // best effort: recovery removes what is left
		}
	}
}

// kickStep is how much is written to a segment between requests for a spare.
func (j *journal) kickStep() int64 { return max(1, min(j.segSize/16, prepareAfter)) }

// worthZeroFill reports whether a zero-fill that takes as long as the last
// one (lastPrep, 0 when there was none) would be ready before the active
// segment is full (fullBy, unix ns). When writes outrun it the spare would
// miss its roll-over and cost the disk a segment of zeros for a few late
// records; the segment after is tried again, at its own rate.
// A zero-fill that short is always worth it (small segments, tests).
func worthZeroFill(now time.Time, lastPrep time.Duration, fullBy int64) bool {
	return lastPrep < cheapZeroFill || fullBy == 0 || now.Add(lastPrep).UnixNano() <= fullBy
}

const cheapZeroFill = 50 * time.Millisecond

var (
	errStopped   = errors.New("ledger/local: journal stopped")
	errHaveSpare = errors.New("ledger/local: a recycled segment became the spare")
)

// The zero-fill competes with the commits' fdatasync for the device: it
// writes and syncs small chunks and rests after each for as long as the chunk
// took, so a commit never waits behind more than one chunk and the spare gets
// at most half of the device's time.
const (
	prepChunk    = 256 << 10
	prepareAfter = 4 << 20 // bytes written to a segment before the next one is prepared
)

// prepare writes a spare: a file of segSize zero bytes, synced.
func (j *journal) prepare(name string) (vfs.File, error) {
	f, err := j.fs.Create(name)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, min(prepChunk, j.segSize))
	rest := time.NewTimer(0)
	defer rest.Stop()
	for off := int64(0); off < j.segSize; {
		start := time.Now()
		n, err := f.WriteAt(zeros[:min(int64(len(zeros)), j.segSize-off)], off)
		off += int64(n)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		rest.Reset(time.Since(start))
		select {
		case <-j.prepStop:
			f.Close()
			return nil, errStopped
		case <-rest.C:
		}
		if j.hasSpare() { // the janitor recycled a segment meanwhile
			f.Close()
			return nil, errHaveSpare
		}
	}
	return f, nil
}
