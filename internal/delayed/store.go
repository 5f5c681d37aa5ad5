package delayed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/messagebus/messagebus/internal/pebbledb"
)

// Defaults of Options.
const (
	DefaultWindow        = 5 * time.Second
	DefaultWindowEntries = 8192
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultCacheSize     = 8 << 20
	DefaultMemTableSize  = 4 << 20
)

// An index's batch of writes is committed (without fsync) once it holds this
// many operations or bytes, so that add never waits for I/O beyond that.
const (
	flushOps   = 1024
	flushBytes = 64 << 10
)

// ErrClosed is returned when the store is closed.
var ErrClosed = errors.New("delayed: store closed")

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// Window and WindowEntries bound what an index keeps in memory: the
	// entries due within Window of the earliest one, at most WindowEntries.
	Window        time.Duration
	WindowEntries int
	// FlushInterval is how often pending writes are committed and the
	// write-ahead log synced.
	FlushInterval time.Duration
	// CacheSize and MemTableSize size Pebble's block cache and memtables.
	CacheSize    int64
	MemTableSize uint64
	Logger       *slog.Logger

	fs  vfs.FS       // tests: an in-memory, crashable file system
	now func() int64 // tests: the clock, unix milliseconds
}

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WindowEntries <= 0 {
		o.WindowEntries = DefaultWindowEntries
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = func() int64 { return time.Now().UnixMilli() }
	}
}

// Name identifies the index of one subscription.
type Name struct{ Topic, Subscription string }

// Store holds the delayed-delivery indexes of all subscriptions of a broker
// in one Pebble database. It is safe for concurrent use.
//
// Lock order: Index.mu before Store.mu; the flusher takes them one at a time.
type Store struct {
	db       *pebbledb.DB
	opts     Options
	log      *slog.Logger
	windowMs int64

	mu      sync.Mutex
	records map[Name]record   // persisted index records
	open    map[uint64]*Index // open handles by index id
	lastID  uint64
	closed  bool // no more indexes open, no more flushes
	dbGone  bool // the database is closed
	// unsynced is set by every commit made without fsync since the last sync.
	unsynced atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// Open opens (creating it if needed) the store in dir. Indexes of temporary
// subscriptions, and data no index refers to, left by a previous run are
// deleted.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		Cache:        cache,
		MemTableSize: opts.MemTableSize,
	}
	if opts.fs != nil {
		popts.FS = opts.fs
	}
	db, err := pebbledb.Open(dir, pebbledb.Options{Store: "delayed-delivery", Pebble: popts, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:       db,
		opts:     opts,
		log:      opts.Logger,
		windowMs: opts.Window.Milliseconds(),
		records:  map[Name]record{},
		open:     map[uint64]*Index{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.windowMs <= 0 {
		s.windowMs = 1
	}
	if err := db.Guard(s.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("load delayed-delivery store %s: %w", dir, err)
	}
	go s.flusher()
	return s, nil
}

// load reads the index records and deletes what no live index owns.
func (s *Store) load() error {
	b := s.db.NewBatch()
	defer b.Close()
	if v, closer, err := s.db.Get(keyLastID); err == nil {
		if len(v) == 8 {
			s.lastID = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	live := map[uint64]bool{}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMeta}, UpperBound: []byte{prefixMeta + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		n, ok1 := decodeMetaKey(it.Key())
		r, ok2 := decodeRecord(it.Value())
		switch {
		case !ok1 || !ok2:
			return errors.Join(fmt.Errorf("bad index record %q", it.Key()), it.Close())
		case r.temporary:
			b.Delete(it.Key(), nil)
		default:
			s.records[n] = r
			live[r.id] = true
		}
		s.lastID = max(s.lastID, r.id)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	// Delete the data and counts of indexes without a live record: one seek
	// per index id present.
	for _, prefix := range []byte{prefixData, prefixCount} {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
		if err != nil {
			return err
		}
		for valid := it.First(); valid; {
			k := it.Key()
			if len(k) < dataPrefLen {
				valid = it.Next()
				continue
			}
			id := binary.BigEndian.Uint64(k[1:])
			next := appendIDPrefix(prefix, id+1)
			if !live[id] {
				b.DeleteRange(appendIDPrefix(prefix, id), next, nil)
			}
			if id == ^uint64(0) {
				break
			}
			valid = it.SeekGE(next)
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.Sync)
}

func appendIDPrefix(prefix byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, id)
}

// Index opens the index of a subscription. epoch identifies the incarnation
// of the entry ids it holds (the topic's ledger id): an index last used with
// another epoch starts empty. A temporary index (a non-durable subscription)
// is deleted when closed and by the next Open of the store.
//
// Opening a name whose previous handle is still open (the subscription was
// removed and created again before the old one finished closing) gives a
// new, empty index; the old handle's data is deleted when it closes.
func (s *Store) Index(n Name, epoch int64, temporary bool) (*Index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r, ok := s.records[n]
	_, inUse := s.open[r.id]
	if ok && !inUse && r.epoch == epoch && !r.temporary && !temporary {
		x := s.newIndex(n, r)
		x.beyond = true // what is on disk is loaded on first use
		if v, closer, err := s.db.Get(countKey(r.id)); err == nil {
			if len(v) == 8 {
				x.count = int64(binary.BigEndian.Uint64(v))
			}
			closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return nil, fmt.Errorf("open delayed index of %s/%s: %w", n.Topic, n.Subscription, err)
		}
		s.open[r.id] = x
		return x, nil
	}
	// A new index id. The record is synced before any data is written under
	// the id, so no data can outlive the record that owns it.
	b := s.db.NewBatch()
	defer b.Close()
	if ok && !inUse {
		deleteIndexData(b, r.id)
	}
	nr := record{id: s.lastID + 1, epoch: epoch, temporary: temporary}
	b.Set(keyLastID, binary.BigEndian.AppendUint64(nil, nr.id), nil)
	b.Set(metaKey(n), nr.encode(), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("create delayed index of %s/%s: %w", n.Topic, n.Subscription, err)
	}
	s.lastID = nr.id
	s.records[n] = nr
	x := s.newIndex(n, nr)
	x.hi = key{at: satAdd(s.opts.now(), s.windowMs), id: minKey.id}
	s.open[nr.id] = x
	return x, nil
}

func (s *Store) newIndex(n Name, r record) *Index {
	return &Index{st: s, name: n, id: r.id, temporary: r.temporary, hi: minKey}
}

func deleteIndexData(b *pebble.Batch, id uint64) {
	b.DeleteRange(appendIDPrefix(prefixData, id), appendIDPrefix(prefixData, id+1), nil)
	b.Delete(countKey(id), nil)
}

// release forgets the open handle x and, when drop is set or x is temporary
// or no longer the name's index, deletes its data and record. The data is
// kept while another handle has the same index open.
func (s *Store) release(x *Index, drop bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[x.id] == x {
		delete(s.open, x.id)
	}
	if s.dbGone {
		return ErrClosed
	}
	if _, other := s.open[x.id]; other {
		return nil
	}
	r, ok := s.records[x.name]
	current := ok && r.id == x.id
	if current && !drop && !x.temporary {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	deleteIndexData(b, x.id)
	if current {
		b.Delete(metaKey(x.name), nil)
		delete(s.records, x.name)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("delete delayed index of %s/%s: %w", x.name.Topic, x.name.Subscription, err)
	}
	s.unsynced.Store(true)
	return nil
}

// Indexes lists the names of the indexes the store holds, open or not, so
// that an owner can remove those of subscriptions that no longer exist.
func (s *Store) Indexes() []Name {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Name, 0, len(s.records))
	for n := range s.records {
		out = append(out, n)
	}
	return out
}

// Remove deletes the index of a subscription that is not open. Removing a
// name without an index does nothing.
func (s *Store) Remove(n Name) error {
	s.mu.Lock()
	r, ok := s.records[n]
	_, inUse := s.open[r.id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if inUse {
		return fmt.Errorf("delayed index of %s/%s is open", n.Topic, n.Subscription)
	}
	return s.release(&Index{name: n, id: r.id}, true)
}

// Flush commits the pending writes of every open index and syncs the
// write-ahead log: what was added before survives a crash.
func (s *Store) Flush() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	open := make([]*Index, 0, len(s.open))
	for _, x := range s.open {
		open = append(open, x)
	}
	s.mu.Unlock()
	for _, x := range open {
		x.flush()
	}
	return s.sync()
}

func (s *Store) sync() error {
	if !s.unsynced.Swap(false) {
		return nil
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		s.unsynced.Store(true)
		return fmt.Errorf("sync delayed-delivery store: %w", err)
	}
	return nil
}

func (s *Store) flusher() {
	defer close(s.done)
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Flush(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("flush delayed-delivery store", "err", err)
			}
		}
	}
}

// Close flushes and closes every open index, then the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := make([]*Index, 0, len(s.open))
	for _, x := range s.open {
		open = append(open, x)
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	for _, x := range open {
		x.Close()
	}
	s.mu.Lock()
	s.dbGone = true
	s.mu.Unlock()
	err := s.sync()
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// commit applies a batch without fsync and closes it.
func (s *Store) commit(b *pebble.Batch) error {
	err := b.Commit(pebble.NoSync)
	b.Close()
	if err == nil {
		s.unsynced.Store(true)
	}
	return err
}
