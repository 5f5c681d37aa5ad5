package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/pace"
)

// DefaultDeletionLag is how long offloaded entries stay on local disk, as
// Pulsar's managedLedgerOffloadDeletionLagMs (4 hours).
const DefaultDeletionLag = 4 * time.Hour

// Options configure a tiered Store.
type Options struct {
	Objects objstore.Store
	// Prefix of every object key (no trailing slash needed).
	Prefix string
	// Dir holds the manifests (one small file per ledger with offloaded data).
	Dir string
	// DeletionLag: offloaded entries are deleted locally this long after
	// their offload (0: DefaultDeletionLag; negative: at once).
	DeletionLag time.Duration
	// DeferDeletionAtOpen: a ledger just opened deletes nothing (local
	// entries, trimmed objects) until SetDeletionLag is called or this long
	// has passed, so that a lag set per topic by policy is the one applied
	// after a restart. 0: not deferred.
	DeferDeletionAtOpen time.Duration
	// BlockSize of segment objects (0: object.DefaultBlock) and the most
	// entry data in one object (0: 64 MiB).
	BlockSize      int
	MaxObjectBytes int
	// CacheBytes is the block cache's budget (0: 64 MiB): cached blocks and
	// blocks being read.
	CacheBytes int64
	// ReadAheadBlocks: a reader of block b has blocks b+1..b+ReadAheadBlocks
	// of the object read into the cache in the background (0: 4; negative:
	// none), while the blocks being read stay within a quarter of
	// CacheBytes.
	ReadAheadBlocks int
	// MaxRate bounds the entry bytes per second an offload reads from the
	// local ledger and writes to the object store, over all ledgers of the
	// store (0: no limit).
	MaxRate int64
	// NoYield: offloads do not pause while the store's ledgers are being
	// appended to (by default each step is followed by a pause as long as
	// it ran: internal/pace).
	NoYield bool
	// NoIdleIO: offloads read the local ledger at the usual I/O priority
	// (by default at the idle class, pace.IdleIO).
	NoIdleIO bool
	// CPU is the CPU priority offloads run at (pace.Background); zero:
	// the usual priority.
	CPU pace.CPU
	// OpTimeout bounds each object-store call (0: 30 s).
	OpTimeout time.Duration
	Metrics   *Metrics // nil: not registered
	Logger    *slog.Logger
}

// Store is a ledger.Store whose ledgers can offload to an object store.
type Store struct {
	inner ledger.Store
	o     Options
	cache *object.BlockCache
	holds *holds // reads in progress per object: deletion waits for them
	// limiter paces offloads (Options.MaxRate); nil: no limit.
	limiter *rate.Limiter
	// appends is when a ledger of the store was last appended to.
	appends pace.Activity
	// encodeBufs keeps object buffers between offloads (a few: each is
	// tens of MiB). Not a sync.Pool: a collection empties that, and a fresh
	// buffer is tens of MiB that Go zeroes (and, grown by append, copies
	// several times), which triggers the next collections.
	encodeBufs chan []byte
	log        *slog.Logger
	ctx        context.Context // ends at Close: stops offloads and timers
	stop       context.CancelFunc
	bg         sync.WaitGroup
	bgMu       sync.Mutex // orders spawn's Add before Close's Wait
	done       bool       // Close began: no new background work

	mu   sync.Mutex
	open map[string]*Ledger
}

var _ ledger.Store = (*Store)(nil)

// New wraps inner.
func New(inner ledger.Store, o Options) (*Store, error) {
	if o.Objects == nil {
		return nil, errors.New("tiered: an object store is required")
	}
	if o.DeletionLag == 0 {
		o.DeletionLag = DefaultDeletionLag
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 64 << 20
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.ReadAheadBlocks == 0 {
		o.ReadAheadBlocks = 4
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = objstore.DefaultTimeout
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tiered: %w", err)
	}
	s := &Store{inner: inner, o: o, encodeBufs: make(chan []byte, keptEncodeBufs), cache: object.NewBlockCache(o.Objects, o.CacheBytes, o.Metrics.cache()),
		holds: newHolds(), log: o.Logger, open: map[string]*Ledger{}}
	if o.MaxRate > 0 {
		// A burst of an eighth of a second's budget (at least 64 KiB)
		// keeps the pace even.
		s.limiter = rate.NewLimiter(rate.Limit(o.MaxRate), int(max(o.MaxRate/8, 64<<10)))
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Open implements ledger.Store.
func (s *Store) Open(ctx context.Context, topic string) (ledger.Ledger, error) {
	in, err := s.inner.Open(ctx, topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.open[topic]; l != nil && l.inner == in {
		return l, nil
	}
	m, err := loadManifest(s.o.Dir, topic, in.ID())
	if err != nil {
		return nil, err
	}
	l := &Ledger{s: s, inner: in, man: m, deleting: map[string]bool{},
		status: ledger.OffloadStatus{Status: ledger.OffloadNotRun, FirstUnoffloaded: m.end()}}
	s.open[topic] = l
	if d := s.o.DeferDeletionAtOpen; d > 0 {
		l.timer = time.AfterFunc(d, func() {
			l.mu.Lock()
			l.lagSet = true
			l.mu.Unlock()
			l.scheduleLocalDeletion()
		})
	} else {
		l.lagSet = true
		l.scheduleLocalDeletion()
	}
	l.collectOrphansAtOpen()
	return l, nil
}

// Delete implements ledger.Store: the ledger, its manifest, then its
// objects (best effort: one left behind is an orphan).
func (s *Store) Delete(ctx context.Context, topic string) error {
	var m *manifest
	s.mu.Lock()
	l := s.open[topic]
	delete(s.open, topic)
	s.mu.Unlock()
	if l != nil {
		l.halt()
		m, _ = loadManifest(s.o.Dir, topic, l.inner.ID())
	} else if topics, err := s.inner.Topics(ctx); err == nil && slices.Contains(topics, topic) {
		if in, err := s.inner.Open(ctx, topic); err == nil { // closed by Delete
			m, _ = loadManifest(s.o.Dir, topic, in.ID())
		}
	}
	if err := s.inner.Delete(ctx, topic); err != nil {
		return err
	}
	if m == nil || !m.onDisk {
		return nil
	}
	if err := removeManifest(s.o.Dir, m.LedgerID); err != nil {
		return fmt.Errorf("tiered: delete manifest: %w", err)
	}
	s.deleteObjects(append(append([]objectEntry(nil), m.Objects...), m.Deleting...))
	return nil
}

// Topics implements ledger.Store.
func (s *Store) Topics(ctx context.Context) ([]string, error) { return s.inner.Topics(ctx) }

// Close implements ledger.Store: offloads in progress stop (an interrupted
// one is resumed by the next offload call) and the inner store closes.
func (s *Store) Close() error {
	s.stop()
	s.bgMu.Lock()
	s.done = true
	s.bgMu.Unlock()
	s.mu.Lock()
	for _, l := range s.open {
		l.stopTimer()
	}
	s.mu.Unlock()
	s.bg.Wait()
	return s.inner.Close()
}

// Health implements ledger.HealthReporter when the inner store does.
func (s *Store) Health() []string {
	if hr, ok := s.inner.(ledger.HealthReporter); ok {
		return hr.Health()
	}
	return nil
}

// objectKey is <prefix>/<tenant>/<ns>/<topic>/<ledger>/<first>-<last>.
// A ledger the broker keeps for a topic under a name of its own,
// "<kind>/persistent://<tenant>/<ns>/<topic>/<rest>" (the compacted
// ledgers: "__compacted/.../<seq>"), goes under the topic's key as
// <topic>/<kind>/<rest>/<ledger>/..., apart from the topic ledger's keys.
func (s *Store) objectKey(topic string, ledgerID, first, last int64) string {
	name := topic
	if i := strings.Index(name, "://"); i >= 0 {
		kind, _, internal := strings.Cut(name[:i], "/")
		name = name[i+3:]
		if internal {
			if parts := strings.SplitN(name, "/", 4); len(parts) == 4 {
				name = strings.Join(parts[:3], "/") + "/" + kind + "/" + parts[3]
			}
		}
	}
	key := fmt.Sprintf("%s/%d/%d-%d", name, ledgerID, first, last)
	if s.o.Prefix != "" {
		key = s.o.Prefix + "/" + key
	}
	return key
}

// keptEncodeBufs is how many object buffers the store keeps between
// offloads; more offloads at once allocate their own.
const keptEncodeBufs = 2

// encodeBuf returns an empty object buffer, sized for a whole object of
// entries of about 100 bytes or more.
func (s *Store) encodeBuf() []byte {
	select {
	case b := <-s.encodeBufs:
		return b[:0]
	default:
		return make([]byte, 0, s.o.MaxObjectBytes+s.o.MaxObjectBytes/8+1<<20)
	}
}

// keepEncodeBuf keeps b for a later offload, when fewer than
// keptEncodeBufs are kept.
func (s *Store) keepEncodeBuf(b []byte) {
	select {
	case s.encodeBufs <- b:
	default:
	}
}

// spawn runs fn in the background, counted in s.bg, unless the store is
// closing; it reports whether fn was started.
func (s *Store) spawn(fn func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.done {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
	return true
}
