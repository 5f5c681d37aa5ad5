package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Options configure a Store.
type Options struct {
	Client       *clientv3.Client // etcd
	Prefix       string           // etcd key prefix; default /mb/cluster/
	Objects      object.Objects   // where WAL objects go (an objstore.Store)
	ObjectPrefix string           // object key prefix; default "mb"
	Broker       string           // this broker's id, in WAL keys and owner keys (required)
	// Epoch tells runs of one broker id apart in WAL keys; default: the lease id.
	Epoch int64

	// Fence returns the fencing token of a topic this broker owns (cluster
	// ownership by bundles). Nil: the store takes a per-topic owner key bound
	// to Lease when it opens a topic.
	Fence func(ctx context.Context, topic string) (Fence, error)
	// Lease holds the store's owner keys; 0: the store grants one of
	// LeaseTTL (default 10 s), keeps it alive and revokes it on Close.
	Lease    clientv3.LeaseID
	LeaseTTL time.Duration

	WALMaxDelay     time.Duration // default 5 ms
	WALMaxBytes     int           // default 4 MiB
	MaxTopicsPerWAL int           // default 60 (etcd's --max-txn-ops is 128: 2 compares per topic)
	// WALMaxInflight bounds the WAL objects being written at once (their
	// index transactions still commit one at a time, in order); default 4,
	// 1 writes one object at a time.
	WALMaxInflight int
	CacheBytes     int64         // block cache; default 64 MiB
	CursorFlush    time.Duration // cursor and trim checkpoint interval; default 1 s
	CallTimeout    time.Duration // one etcd or S3 call; default 10 s
	CommitTimeout  time.Duration // retries of one WAL commit before its appends fail; default 30 s

	// RewriteInterval: every interval, the WAL data of open ledgers
	// committed more than one interval ago is rewritten into segment
	// objects (rewrite.go); default 30 s, negative: never.
	RewriteInterval   time.Duration
	SegmentMaxBytes   int64 // bytes of entry data per segment object; default 64 MiB
	SegmentBlockBytes int   // block size in segment objects; default 4 MiB
	// GCInterval: every interval, WAL objects nothing points into are
	// deleted (gc.go); default 1 min, negative: never.
	GCInterval time.Duration
	// OrphanInterval: every interval, WAL and segment objects no etcd
	// record leads to, found so by two passes at least OrphanGrace apart,
	// are deleted (orphans.go); default 5 min, negative: never.
	OrphanInterval time.Duration
	OrphanGrace    time.Duration // default 10 min; negative: 0 (tests)

	Metrics *Metrics
	Logger  *slog.Logger
}

// Store is the cluster ledger store. See the package documentation.
type Store struct {
	o     Options
	c     *clientv3.Client
	keys  keys
	lease clientv3.LeaseID
	cache *object.BlockCache
	m     *Metrics
	log   *slog.Logger

	ownLease bool
	ctx      context.Context // ended by Close
	cancel   context.CancelFunc

	mu      sync.Mutex
	closed  bool
	ledgers map[string]*cledger
	// unloadedDone: ledger id → the fencing revision under which the rewrite
	// found that topic, not loaded, with nothing to rewrite; Open forgets it
	// (rewrite_unloaded.go).
	unloadedDone map[int64]int64

	w *walWriter

	rewriteMu sync.Mutex // one rewrite pass at a time
	gcMu      sync.Mutex // one collection pass at a time
	orphanMu  sync.Mutex // one orphan sweep at a time, and orphanSeen
	// orphanSeen: when a sweep first found each unreferenced object.
	orphanSeen map[string]time.Time
	crashHook  func(point string) bool

	loops sync.WaitGroup
}

var _ ledger.Store = (*Store)(nil)

// New opens a store.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Client == nil || o.Objects == nil || o.Broker == "" {
		return nil, errors.New("cluster ledger: etcd client, object store and broker id are required")
	}
	if strings.ContainsAny(o.Broker, "/") {
		return nil, fmt.Errorf("cluster ledger: broker id %q contains '/'", o.Broker)
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	o.Prefix = "/" + strings.Trim(o.Prefix, "/") + "/"
	if o.ObjectPrefix == "" {
		o.ObjectPrefix = defaultObjPrefx
	}
	o.ObjectPrefix = strings.Trim(o.ObjectPrefix, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LeaseTTL, 10*time.Second)
	def(&o.WALMaxDelay, 5*time.Millisecond)
	def(&o.CursorFlush, time.Second)
	def(&o.CallTimeout, 10*time.Second)
	def(&o.CommitTimeout, 30*time.Second)
	if o.RewriteInterval == 0 {
		o.RewriteInterval = 30 * time.Second
	}
	if o.GCInterval == 0 {
		o.GCInterval = time.Minute
	}
	if o.OrphanInterval == 0 {
		o.OrphanInterval = 5 * time.Minute
	}
	switch {
	case o.OrphanGrace == 0:
		o.OrphanGrace = 10 * time.Minute
	case o.OrphanGrace < 0:
		o.OrphanGrace = 0
	}
	if o.SegmentMaxBytes <= 0 {
		o.SegmentMaxBytes = 64 << 20
	}
	if o.WALMaxBytes <= 0 {
		o.WALMaxBytes = 4 << 20
	}
	if o.WALMaxInflight <= 0 {
		o.WALMaxInflight = 4
	}
	if o.MaxTopicsPerWAL <= 0 {
		o.MaxTopicsPerWAL = 60
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{o: o, c: o.Client, keys: keys{o.Prefix}, lease: o.Lease, m: o.Metrics, log: o.Logger,
		cache: object.NewBlockCache(o.Objects, o.CacheBytes, object.CacheMetrics{}), ctx: sctx, cancel: cancel,
		ledgers: map[string]*cledger{}, orphanSeen: map[string]time.Time{}, unloadedDone: map[int64]int64{}}
	if s.lease == 0 && o.Fence == nil {
		cctx, ccancel := s.callCtx(ctx)
		g, err := s.c.Grant(cctx, int64((o.LeaseTTL+time.Second-1)/time.Second))
		ccancel()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("cluster ledger: grant lease: %w", err)
		}
		s.lease, s.ownLease = g.ID, true
		ka, err := s.c.KeepAlive(sctx, g.ID)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("cluster ledger: keep lease alive: %w", err)
		}
		go func() {
			for range ka { // drained until the lease is lost or the store closes
			}
		}()
	}
	if s.o.Epoch == 0 {
		s.o.Epoch = int64(s.lease)
		if s.o.Epoch == 0 {
			s.o.Epoch = time.Now().UnixNano()
		}
	}
	s.w = newWALWriter(s)
	s.loops.Add(2)
	go func() { defer s.loops.Done(); s.w.run() }()
	go func() { defer s.loops.Done(); s.checkpointLoop() }()
	if o.RewriteInterval > 0 {
		s.every(o.RewriteInterval, "WAL rewrite", nil, func(ctx context.Context) error {
			_, err := s.Rewrite(ctx, time.Now().Add(-o.RewriteInterval))
			return err
		})
	}
	if o.GCInterval > 0 {
		s.every(o.GCInterval, "WAL garbage collection", nil, func(ctx context.Context) error {
			_, err := s.CollectWAL(ctx)
			return err
		})
	}
	if _, ok := o.Objects.(object.Lister); ok && o.OrphanInterval > 0 {
		s.every(o.OrphanInterval, "orphan sweep", s.m.orphanErrors, func(ctx context.Context) error {
			_, err := s.SweepOrphans(ctx)
			return err
		})
	}
	return s, nil
}

// every runs pass every interval in the background until the store
// closes. A failure (not the closing's) is logged and, with failed,
// counted; the next pass retries.
func (s *Store) every(interval time.Duration, what string, failed prometheus.Counter, pass func(context.Context) error) {
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			if err := pass(s.ctx); err != nil && s.ctx.Err() == nil {
				if failed != nil {
					failed.Inc()
				}
				s.log.Warn("cluster ledger: "+what+" failed", "err", err)
			}
		}
	}()
}

// callCtx bounds one remote call.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.CallTimeout)
}

// Lease is the lease holding the store's own owner keys (0 with Options.Fence).
func (s *Store) Lease() clientv3.LeaseID { return s.lease }

// Open implements ledger.Store.
func (s *Store) Open(ctx context.Context, topic string) (ledger.Ledger, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ledger.ErrClosed
	}
	if l := s.ledgers[topic]; l != nil {
		if l.transient { // the broker's now (rewrite_unloaded.go)
			l.transient = false
			delete(s.unloadedDone, l.id)
		}
		s.mu.Unlock()
		return l, nil
	}
	s.mu.Unlock()
	l, err := s.load(ctx, topic, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	if old := s.ledgers[topic]; old != nil { // opened concurrently
		if old.transient {
			old.transient = false
			delete(s.unloadedDone, old.id)
		}
		return old, nil
	}
	s.ledgers[topic] = l
	delete(s.unloadedDone, l.id) // it may be appended to: look again once unloaded
	return l, nil
}

// load creates the topic record when missing (with create; else
// ledger.ErrNotFound), takes the fencing token and reads the index and
// cursors.
func (s *Store) load(ctx context.Context, topic string, create bool) (*cledger, error) {
	tk := s.keys.topic(topic)
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	put := []clientv3.Op{clientv3.OpPut(tk, mustJSON(topicRecord{V: topicVersion}))}
	if !create {
		put = nil
	}
	resp, err := s.c.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(tk), "=", 0)).
		Then(put...).
		Else(clientv3.OpGet(tk)).Commit()
	s.m.txns.Inc()
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: open %s: %w", topic, err)
	}
	if resp.Succeeded && !create {
		return nil, fmt.Errorf("%w: %s", ledger.ErrNotFound, topic)
	}
	l := &cledger{s: s, name: topic, topicKey: tk, changed: make(chan struct{}), failedCh: make(chan struct{}), last: -1,
		cursors: map[string]*ledger.CursorState{}, dirty: map[string][]byte{}, committedAt: map[int64]time.Time{}}
	if resp.Succeeded {
		l.id = resp.Header.Revision
	} else {
		kv := resp.Responses[0].GetResponseRange().Kvs[0]
		l.id = kv.CreateRevision
		var rec topicRecord
		if err := decodeJSON(kv.Value, "topic "+topic, topicVersion, &rec); err != nil {
			return nil, err
		}
		l.first, l.trimmedBytes = rec.First, rec.TrimmedBytes
	}
	if s.o.Fence != nil {
		l.fence, err = s.o.Fence(ctx, topic)
	} else {
		l.fence, err = s.ownTopic(ctx, topic)
	}
	if err != nil {
		return nil, err
	}
	// The index and cursors are read after the token is ours: a previous
	// owner can commit nothing more.
	ir, err := s.c.Get(cctx, s.keys.indexDir(l.id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: read index of %s: %w", topic, err)
	}
	for _, kv := range ir.Kvs {
		var e indexEntry
		if err := decodeIndex(kv.Value, string(kv.Key), &e); err != nil {
			return nil, err
		}
		l.index = append(l.index, e)
	}
	if n := len(l.index); n > 0 {
		l.last, l.cum = l.index[n-1].Last, l.index[n-1].Cum
	}
	if len(l.index) == 0 && l.first > 0 {
		l.last = l.first - 1 // trimmed to the end: ids go on
		l.cum = l.trimmedBytes
	}
	l.first = min(max(l.first, 0), l.last+1)
	l.next = l.last + 1
	pr, err := s.c.Get(cctx, s.keys.pendingDir(l.id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: read pending objects of %s: %w", topic, err)
	}
	l.pendingDirty = pr.Count > 0 // a crashed rewrite or trim: the next pass cleans up
	cr, err := s.c.Get(cctx, s.keys.cursorDir(l.id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: read cursors of %s: %w", topic, err)
	}
	for _, kv := range cr.Kvs {
		name, err := nameFromCursorKey(s.keys, l.id, string(kv.Key))
		if err != nil {
			return nil, err
		}
		c := &ledger.CursorState{}
		if err := c.UnmarshalBinary(kv.Value); err != nil {
			return nil, fmt.Errorf("cluster ledger: cursor %s of %s: %w", name, topic, err)
		}
		l.cursors[name] = c
	}
	return l, nil
}

// Delete implements ledger.Store.
func (s *Store) Delete(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	l := s.ledgers[topic]
	s.mu.Unlock()
	if l != nil {
		l.Close()
	}
	tk := s.keys.topic(topic)
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	gr, err := s.c.Get(cctx, tk)
	if err != nil {
		return fmt.Errorf("cluster ledger: delete %s: %w", topic, err)
	}
	if len(gr.Kvs) == 0 {
		return fmt.Errorf("%w: %s", ledger.ErrNotFound, topic)
	}
	id := gr.Kvs[0].CreateRevision
	segs, err := s.segmentsOf(cctx, id)
	if err != nil {
		return fmt.Errorf("cluster ledger: delete %s: %w", topic, err)
	}
	ops := []clientv3.Op{clientv3.OpDelete(tk),
		clientv3.OpDelete(s.keys.indexDir(id), clientv3.WithPrefix()),
		clientv3.OpDelete(s.keys.cursorDir(id), clientv3.WithPrefix()),
		clientv3.OpDelete(s.keys.pendingDir(id), clientv3.WithPrefix())}
	if s.o.Fence == nil {
		ops = append(ops, clientv3.OpDelete(s.keys.owner(topic)))
	}
	resp, err := s.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(tk), "=", id)).Then(ops...).Commit()
	s.m.txns.Inc()
	if err != nil {
		return fmt.Errorf("cluster ledger: delete %s: %w", topic, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s (deleted concurrently)", ledger.ErrNotFound, topic)
	}
	// WAL objects are shared by topics: garbage collection deletes them once
	// no index entry points into them (gc.go). Segment objects are the
	// topic's own (a failure here leaves an orphan, logged).
	for _, key := range segs {
		if err := s.deleteObject(ctx, key); err != nil {
			s.log.Warn("cluster ledger: segment object of a deleted topic left behind", "topic", topic, "err", err)
			continue
		}
		s.m.segmentsDeleted.Inc()
	}
	return nil
}

// segmentsOf lists the segment objects of ledger id: in its index and in
// its pending records.
func (s *Store) segmentsOf(ctx context.Context, id int64) ([]string, error) {
	ir, err := s.c.Get(ctx, s.keys.indexDir(id), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range ir.Kvs {
		var e indexEntry
		if err := decodeIndex(kv.Value, string(kv.Key), &e); err != nil {
			return nil, err
		}
		if e.Seg != "" {
			out = append(out, e.Seg)
		}
	}
	pr, err := s.c.Get(ctx, s.keys.pendingDir(id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	for _, kv := range pr.Kvs {
		if key, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), s.keys.pendingDir(id))); err == nil {
			out = append(out, key)
		}
	}
	return out, nil
}

// Topics implements ledger.Store.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.c.Get(cctx, s.keys.topics(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: list topics: %w", err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := topicFromKey(s.keys, string(kv.Key))
		if err != nil {
			return nil, fmt.Errorf("cluster ledger: topic key %q: %w", kv.Key, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Release closes the ledger of topic without deleting anything (the topic
// moves to another broker); a no-op when it is not open.
func (s *Store) Release(topic string) error {
	s.mu.Lock()
	l := s.ledgers[topic]
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close()
}

// errLeaseLost marks the failure Abandon sets: Close then skips the
// cursor checkpoint (the guard would refuse it).
var errLeaseLost = errors.New("its lease was lost")

// Abandon fails the open ledgers whose name match accepts with ErrFenced:
// this broker lost the lease their fencing tokens hang on (its bundles are
// gone), so nothing of theirs can commit any more. Their pending appends
// fail at once instead of retrying against stores that may be out of reach,
// so closing them (Release) does not wait for the commit timeout.
func (s *Store) Abandon(match func(name string) bool) {
	s.mu.Lock()
	var ls []*cledger
	for name, l := range s.ledgers {
		if match(name) {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.fail(fmt.Errorf("%w: %s (%w)", ErrFenced, l.name, errLeaseLost))
	}
	if len(ls) > 0 {
		s.log.Warn("cluster ledger: lease lost; pending appends of the released topics fail", "topics", len(ls))
	}
}

// Close implements ledger.Store: it closes every ledger (their pending
// appends complete), stops the writer and revokes the store's own lease.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := make([]*cledger, 0, len(s.ledgers))
	for _, l := range s.ledgers {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil && !errors.Is(err, ErrFenced) {
			errs = append(errs, err)
		}
	}
	s.w.stop()
	s.cancel()
	s.loops.Wait()
	if s.ownLease {
		ctx, cancel := context.WithTimeout(context.Background(), s.o.CallTimeout)
		if _, err := s.c.Revoke(ctx, s.lease); err != nil {
			errs = append(errs, fmt.Errorf("cluster ledger: revoke lease: %w", err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

func (s *Store) forget(l *cledger) {
	s.mu.Lock()
	if s.ledgers[l.name] == l {
		delete(s.ledgers, l.name)
	}
	s.mu.Unlock()
}
