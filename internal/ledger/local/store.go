package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
	"github.com/messagebus/messagebus/internal/loglimit"
)

// Options configure a Store.
type Options struct {
	// Dir is the data directory: the journal goes in Dir/journal (through FS)
	// and the index database in Dir/index (always on the OS filesystem).
	Dir string
	// FS holds the journal; nil means vfs.Default.
	FS vfs.FS
	// SegmentSize is the size at which the journal rolls over to a new
	// segment file; default 128 MiB, at most 1 GiB.
	SegmentSize int64
	// DisablePreallocation makes the journal append to new segment files
	// instead of overwriting zero-filled ones (journal.go): for filesystems
	// where that is not cheaper, or when the extra background write of each
	// segment's size costs more than the faster fdatasync gains.
	DisablePreallocation bool
	// CacheBytes is the budget of each open ledger's cache of recent entries;
	// default 32 MiB, negative to disable.
	CacheBytes int64
	// CacheTotalBytes bounds all caches together (default 512 MiB): beyond
	// it the caches of the ledgers appended to least recently shrink first.
	CacheTotalBytes int64
	// CursorFlushInterval is how often saved cursors and trim points are
	// written (in one synced batch); default 500ms.
	CursorFlushInterval time.Duration
	// Logger receives recovery and failure reports; nil means slog.Default().
	Logger *slog.Logger
	// OnSync, when set, is called by the journal after each group commit
	// with its write+sync duration, the number of entries and their bytes.
	// It runs on the write path: keep it short.
	OnSync func(d time.Duration, entries, bytes int)
	// OnRoll, when set, is called by the journal each time it starts a new
	// segment (at Open too) with where the segment came from:
	// SegmentRecycled, SegmentZeroFilled or SegmentAppended. It runs on the
	// write path.
	OnRoll func(source string)
	// MinFreeDisk is the free space kept on the file system of Dir: while
	// less is free, appends fail at once with an error wrapping
	// ledger.ErrDiskFull, so that cursors and metadata can still be written;
	// they are accepted again once it is free (diskspace.go). Zero: appends
	// stop only when the file system is full. Spare segments are zero-filled
	// only when they leave it, and at least 1% of the file system, free.
	MinFreeDisk DiskReserve
	// OnPreallocSkipped, when set, is called each time the journal does not
	// prepare a spare segment it wanted, with the reason (PreallocLowDisk).
	OnPreallocSkipped func(reason string)
	// Metrics, when set, records the journal's metrics and reports the
	// store's gauges once it is open (metrics.go).
	Metrics *Metrics

	onFlush    func() // tests: called after each cursor flush that wrote something
	onEvict    func() // tests: called after each run of the cache evictor
	onSpare    func() // tests: called when the journal has a new spare segment ready
	noZeroFill bool   // tests: spares come from recycled segments only
	// tests: zero-fill a spare whatever the write rate (worthZeroFill)
	alwaysZeroFill bool
	diskSpace      func() (free, total uint64, err error) // tests: replaces statfs of Dir
	diskRetry      time.Duration                          // tests: first backoff after a failure for lack of space
	onDiskState    func(full bool)                        // tests: called when the disk-full state changes
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("ledger/local: Options.Dir is required")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	switch {
	case o.SegmentSize == 0:
		o.SegmentSize = 128 << 20
	case o.SegmentSize < 0 || o.SegmentSize > maxSegmentSize:
		return fmt.Errorf("ledger/local: SegmentSize %d out of range (0, %d]", o.SegmentSize, maxSegmentSize)
	}
	switch {
	case o.CacheBytes == 0:
		o.CacheBytes = 32 << 20
	case o.CacheBytes < 0:
		o.CacheBytes = 0
	}
	if o.CacheTotalBytes <= 0 {
		o.CacheTotalBytes = 512 << 20
	}
	if o.CursorFlushInterval <= 0 {
		o.CursorFlushInterval = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Store is the durable, embedded ledger.Store. Use Open.
type Store struct {
	opts       Options
	fs         vfs.FS
	journalDir string
	log        *slog.Logger
	reg        *registry
	segs       *segmentSet
	journal    *journal

	// opMu serializes Open, Delete, Close and ledger Close; it guards
	// ledgerState.handle and reg.lastID, and is held when closed is set.
	opMu   sync.Mutex
	closed atomic.Bool

	mu      sync.Mutex // guards ledgers
	ledgers map[string]*ledgerState

	flushMu  sync.Mutex // serializes writes of cursor states and trim points
	dirtyMu  sync.Mutex // guards dirtySet
	dirtySet map[*ledgerState]struct{}

	damage      damage
	readOnly    bool            // opened by Verify: nothing is written
	quarantined map[uint64]bool // segments holding quarantined records: kept; read-only after Open

	janitorMu   sync.Mutex // one segment collection at a time
	janitorKick chan struct{}

	flushLog *loglimit.Limiter // flush failures repeat every interval while the disk is full

	cacheTotal  atomic.Int64 // bytes in all ledgers' caches
	cacheSeq    atomic.Int64 // orders cache adds, for recency
	evictorKick chan struct{}
	stopBg      chan struct{}
	bg          sync.WaitGroup
}

var _ ledger.Store = (*Store)(nil)

// Open opens the store in opts.Dir, creating it when missing, and recovers
// the journal: every record is checked, damage is skipped and reported
// (recovery.go), a torn tail of the last segment is truncated, and the
// ledgers' indexes are rebuilt.
func Open(opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	opts.Metrics.instrument(&opts)
	s := &Store{
		opts:        opts,
		fs:          opts.FS,
		journalDir:  filepath.Join(opts.Dir, "journal"),
		log:         opts.Logger,
		segs:        &segmentSet{m: map[uint64]*segment{}, fs: opts.FS, dir: filepath.Join(opts.Dir, "journal")},
		ledgers:     map[string]*ledgerState{},
		dirtySet:    map[*ledgerState]struct{}{},
		quarantined: map[uint64]bool{},
		janitorKick: make(chan struct{}, 1),
		evictorKick: make(chan struct{}, 1),
		stopBg:      make(chan struct{}),
		flushLog:    loglimit.New(diskLogInterval),
	}
	if err := s.fs.MkdirAll(s.journalDir); err != nil {
		return nil, fmt.Errorf("ledger/local: %w", err)
	}
	reg, st, err := openRegistry(filepath.Join(opts.Dir, "index"), s.log, false)
	if err != nil {
		return nil, fmt.Errorf("ledger/local: %w", err)
	}
	s.reg = reg
	s.journal = newJournal(s.fs, s.journalDir, opts.SegmentSize, !opts.DisablePreallocation, s.log, opts.OnSync, opts.OnRoll, s.segs)
	s.journal.sealed = s.kickJanitor
	s.journal.onSpare, s.journal.noZeroFill, s.journal.alwaysZeroFill = opts.onSpare, opts.noZeroFill, opts.alwaysZeroFill
	s.journal.space.init(&s.opts, opts.Dir)

	byID := s.loadLedgers(st)
	for _, l := range byID {
		s.ledgers[l.name] = l
	}
	if err := s.recover(byID, st); err != nil {
		s.segs.closeAll()
		reg.close()
		return nil, fmt.Errorf("ledger/local: recover %s: %w", s.journalDir, err)
	}
	s.journal.checkDisk() // a store opened on a full disk refuses appends at once
	s.journal.start()
	s.bg.Add(4)
	go s.watchDisk()
	go s.flushLoop()
	go s.onKick(s.janitorKick, s.collectSegments)
	go s.onKick(s.evictorKick, s.evict)
	s.kickJanitor() // segments holding only deleted or trimmed entries
	opts.Metrics.attach(s)
	return s, nil
}

// loadLedgers makes the ledgers the registry knows, by id, with their
// persisted state; recovery then indexes their entries.
func (s *Store) loadLedgers(st *registryState) map[int64]*ledgerState {
	byID := make(map[int64]*ledgerState, len(st.ledgers))
	for name, id := range st.ledgers {
		l := newLedgerState(s, name, id)
		l.first = st.trims[id]
		l.savedNext = st.nexts[id]
		l.refused = st.refused[id]
		if c := st.cursors[id]; c != nil {
			l.cursors = c
		}
		byID[id] = l
	}
	return byID
}

// Open implements ledger.Store.
func (s *Store) Open(ctx context.Context, topic string) (ledger.Ledger, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	s.mu.Lock()
	l := s.ledgers[topic]
	s.mu.Unlock()
	if l == nil {
		id, err := s.reg.create(topic)
		if err != nil {
			return nil, fmt.Errorf("ledger/local: %w", err)
		}
		l = newLedgerState(s, topic, id)
		s.mu.Lock()
		s.ledgers[topic] = l
		s.mu.Unlock()
	}
	if l.handle == nil {
		l.handle = &handle{l: l}
		l.mu.Lock()
		l.caching = l.cache.max > 0
		l.mu.Unlock()
	}
	return l.handle, nil
}

// closeHandlesLocked closes handles: no append is accepted after it, the
// appends before it complete, the cursors are flushed and the caches dropped.
// The caller holds opMu.
func (s *Store) closeHandlesLocked(hs ...*handle) error {
	s.journal.mu.Lock()
	for _, h := range hs {
		h.closed.Store(true)
	}
	s.journal.mu.Unlock()
	s.journal.barrier()
	for _, h := range hs {
		l := h.l
		l.handle = nil
		l.mu.Lock()
		l.caching = false
		l.cache.clear()
		l.mu.Unlock()
	}
	return s.flush()
}

// Delete implements ledger.Store. The ledger's records stay in the journal
// until their segments are deleted; they are ignored from now on.
func (s *Store) Delete(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closed.Load() {
		return ledger.ErrClosed
	}
	s.mu.Lock()
	l := s.ledgers[topic]
	s.mu.Unlock()
	if l == nil {
		return ledger.ErrNotFound
	}
	if l.handle != nil {
		if err := s.closeHandlesLocked(l.handle); err != nil {
			return err
		}
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.reg.remove(topic, l.id); err != nil {
		return fmt.Errorf("ledger/local: %w", err)
	}
	l.mu.Lock()
	l.deleted = true
	l.idx = entryIndex{}
	l.cache.clear()
	l.cursors, l.dirty = nil, nil
	l.mu.Unlock()
	s.mu.Lock()
	delete(s.ledgers, topic)
	s.mu.Unlock()
	s.dirtyMu.Lock()
	delete(s.dirtySet, l)
	s.dirtyMu.Unlock()
	s.kickJanitor()
	return nil
}

// Topics implements ledger.Store.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	out := make([]string, 0, len(s.ledgers))
	for name := range s.ledgers {
		out = append(out, name)
	}
	return out, nil
}

// Close implements ledger.Store: open ledgers are closed (their appends
// complete), the journal is drained and the cursors flushed.
func (s *Store) Close() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closed.Load() {
		return ledger.ErrClosed
	}
	s.closed.Store(true)
	var errs []error
	if err := s.closeHandlesLocked(s.openHandles()...); err != nil {
		errs = append(errs, err)
	}
	s.journal.close()
	close(s.stopBg)
	s.bg.Wait()
	if err := s.flush(); err != nil {
		errs = append(errs, err)
	}
	s.segs.closeAll()
	if err := s.reg.close(); err != nil {
		errs = append(errs, fmt.Errorf("ledger/local: close index: %w", err))
	}
	return errors.Join(errs...)
}

// openHandles returns the open handles. The caller holds opMu.
func (s *Store) openHandles() []*handle {
	var hs []*handle
	for _, l := range s.snapshot() {
		if l.handle != nil {
			hs = append(hs, l.handle)
		}
	}
	return hs
}

// snapshot returns the ledgers that exist.
func (s *Store) snapshot() []*ledgerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*ledgerState, 0, len(s.ledgers))
	for _, l := range s.ledgers {
		out = append(out, l)
	}
	return out
}
