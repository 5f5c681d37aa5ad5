package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
)

// walItem is one append waiting for its group commit.
type walItem struct {
	l    *cledger
	e    ledger.Entry
	done func(int64, error)
}

// walWriter cuts the appends of every ledger into WAL objects and commits
// them through a pipeline: up to WALMaxInflight objects are written (PUT)
// at once, but their index transactions run one after the other in cut
// order, so each ledger's entries commit, and its receipts run, in id order,
// and every commit is still guarded by the fencing tokens.
type walWriter struct {
	s *Store

	mu      sync.Mutex
	batch   []walItem
	bytes   int
	stopped bool

	kick chan struct{} // a batch started
	full chan struct{} // the batch reached WALMaxBytes (or a Close waits)
	quit chan struct{}
	seq  atomic.Int64

	slots    chan struct{}  // one per WAL object in flight
	prev     chan struct{}  // closed when the last launched object's commit finished
	inflight sync.WaitGroup // launched objects not finished
}

func newWALWriter(s *Store) *walWriter {
	prev := make(chan struct{})
	close(prev)
	return &walWriter{s: s, kick: make(chan struct{}, 1), full: make(chan struct{}, 1), quit: make(chan struct{}),
		slots: make(chan struct{}, s.o.WALMaxInflight), prev: prev}
}

func (w *walWriter) enqueue(it walItem) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		it.l.completed(1)
		it.done(-1, ledger.ErrClosed)
		return
	}
	w.batch = append(w.batch, it)
	w.bytes += len(it.e.Data)
	first, full := len(w.batch) == 1, w.bytes >= w.s.o.WALMaxBytes
	w.mu.Unlock()
	if first {
		signal(w.kick)
	}
	if full {
		signal(w.full)
	}
}

// kickNow cuts the current batch without waiting for WALMaxDelay.
func (w *walWriter) kickNow() { signal(w.kick); signal(w.full) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *walWriter) stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.mu.Unlock()
	close(w.quit)
}

func (w *walWriter) run() {
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			w.flushRest()
			w.inflight.Wait()
			return
		}
		t := time.NewTimer(w.s.o.WALMaxDelay)
		select {
		case <-t.C:
		case <-w.full:
		case <-w.quit:
		}
		t.Stop()
		w.mu.Lock()
		b := w.batch
		w.batch, w.bytes = nil, 0
		w.mu.Unlock()
		if len(b) > 0 {
			w.commit(b)
		}
	}
}

func (w *walWriter) flushRest() {
	w.mu.Lock()
	b := w.batch
	w.batch, w.bytes = nil, 0
	w.mu.Unlock()
	if len(b) > 0 {
		w.commit(b)
	}
}

// group is one ledger's part of a batch.
type group struct {
	l     *cledger
	items []walItem
	meta  object.BlockMeta
	entry indexEntry
}

// commit launches the batch as WAL objects of at most MaxTopicsPerWAL
// topics, each once a pipeline slot is free.
func (w *walWriter) commit(batch []walItem) {
	var groups []*group
	byLedger := map[*cledger]*group{}
	for _, it := range batch {
		g := byLedger[it.l]
		if g == nil {
			g = &group{l: it.l}
			byLedger[it.l] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, it)
	}
	for len(groups) > 0 {
		n := min(len(groups), w.s.o.MaxTopicsPerWAL)
		w.launch(groups[:n])
		groups = groups[n:]
	}
}

// launch starts the commit of one WAL object after the previous one (in
// cut order), waiting for a free slot first: while all slots are busy,
// appends gather in the next batch.
func (w *walWriter) launch(groups []*group) {
	w.slots <- struct{}{}
	w.s.m.walInflight.Inc()
	prev, done := w.prev, make(chan struct{})
	w.prev = done
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		w.commitObject(groups, prev)
		close(done)
		<-w.slots
		w.s.m.walInflight.Dec()
	}()
}

// commitObject writes one WAL object, waits for the commit of the object
// cut before it (prev closed), commits its index entries, then runs the
// callbacks: success for the committed groups, the error for the others.
func (w *walWriter) commitObject(groups []*group, prev <-chan struct{}) {
	s := w.s
	start := time.Now()
	live := groups[:0:0]
	for _, g := range groups {
		if g.l.failure() == nil {
			live = append(live, g)
		}
	}
	var (
		key string
		n   int
		err error
	)
	if len(live) > 0 {
		var buf []byte
		if buf, err = w.encode(live); err == nil {
			key, err = w.put(buf, live)
			n = len(buf)
		}
	}
	<-prev
	// Callbacks run from here on, after those of the previous object. A
	// ledger whose earlier object failed (or was fenced) while this one was
	// being written must not commit later ids over the gap: failures are
	// sticky, so filtering again catches it.
	ok := groups[:0:0]
	for _, g := range groups {
		if ferr := g.l.failure(); ferr != nil {
			finish(g, ferr)
			continue
		}
		ok = append(ok, g) // ok is a subset of live
	}
	switch {
	case err != nil:
		failAll(ok, err)
		return
	case key == "":
		return
	case len(ok) == 0:
		w.discard(key)
		return
	}
	s.m.walBytes.Add(float64(n))
	committed := w.commitIndex(key, ok)
	s.m.flushSeconds.Observe(time.Since(start).Seconds())
	for _, g := range committed {
		entries := make([]ledger.Entry, len(g.items))
		for i, it := range g.items {
			entries[i] = it.e
		}
		s.cache.Add(key, g.meta, entries)
		g.l.committed(g.entry)
		s.m.walEntries.Add(float64(len(g.items)))
		finish(g, nil)
	}
	if len(committed) > 0 {
		s.m.walFlushes.Inc()
	}
}

// encode lays out the blocks of groups as one WAL object.
func (w *walWriter) encode(groups []*group) ([]byte, error) {
	buf := make([]byte, walHeaderSize, walHeaderSize+w.size(groups))
	copy(buf, walMagic)
	binary.BigEndian.PutUint16(buf[4:], walVersion)
	var err error
	entries := make([]ledger.Entry, 0, 64)
	for _, g := range groups {
		entries = entries[:0]
		for _, it := range g.items {
			entries = append(entries, it.e)
		}
		if buf, g.meta, err = object.AppendBlock(buf, entries); err != nil {
			return nil, fmt.Errorf("cluster ledger: encode WAL block: %w", err)
		}
	}
	return buf, nil
}

// discard deletes a WAL object no index entry can reference (none of its
// topics may commit), so it does not wait for garbage collection.
func (w *walWriter) discard(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), w.s.o.CallTimeout)
	defer cancel()
	if err := w.s.o.Objects.Delete(ctx, key); err != nil {
		w.s.log.Warn("cluster ledger: delete of an uncommitted WAL object failed", "key", key, "err", err)
	}
}

func (w *walWriter) size(groups []*group) int {
	n := 0
	for _, g := range groups {
		for _, it := range g.items {
			n += 12 + len(it.e.Data)
		}
	}
	return n
}

// put writes buf as the next WAL object, retrying transient errors until
// CommitTimeout; a key that exists (a previous run with the same epoch)
// moves on to the next sequence number.
// It gives up at once when every ledger of groups has failed (fenced, or
// abandoned with a lost lease): nothing of the object could commit.
func (w *walWriter) put(buf []byte, groups []*group) (string, error) {
	s := w.s
	deadline := time.Now().Add(s.o.CommitTimeout)
	backoff := 50 * time.Millisecond
	for {
		if err := allFailed(groups); err != nil {
			return "", err
		}
		key := fmt.Sprintf("%s/wal/%s/%016x/%016x", s.o.ObjectPrefix, s.o.Broker, uint64(s.o.Epoch), w.seq.Add(1))
		ctx, cancel := s.attemptCtx(groups)
		err := s.o.Objects.Put(ctx, key, buf, true)
		cancel()
		switch {
		case err == nil:
			return key, nil
		case errors.Is(err, object.ErrObjectExists):
			continue
		}
		s.m.walErrors.Inc()
		if ferr := allFailed(groups); ferr != nil {
			return "", ferr
		}
		if time.Now().Add(backoff).After(deadline) {
			return "", fmt.Errorf("cluster ledger: write WAL object %s: %w", key, err)
		}
		s.log.Warn("cluster ledger: WAL object write failed; retrying", "key", key, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// allFailed returns the failure of the first group's ledger when every
// group's ledger has failed, else nil.
func allFailed(groups []*group) error {
	var first error
	for _, g := range groups {
		err := g.l.failure()
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// attemptCtx bounds one call of a commit by CallTimeout and cancels it
// when every group's ledger fails meanwhile (a lost lease): an attempt
// blocked on a store out of reach must not hold the topics' appends.
func (s *Store) attemptCtx(groups []*group) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(s.ctxOrBackground(), s.o.CallTimeout)
	go func() {
		for _, g := range groups {
			select {
			case <-g.l.failedCh:
			case <-ctx.Done():
				return
			}
		}
		cancel()
	}()
	return ctx, cancel
}

// dropFailed finishes the groups whose ledger has failed with that failure
// and returns the others.
func dropFailed(groups []*group) []*group {
	keep := groups[:0:0]
	for _, g := range groups {
		if err := g.l.failure(); err != nil {
			finish(g, err)
			continue
		}
		keep = append(keep, g)
	}
	return keep
}

// ctxOrBackground is the context of calls that must finish what was
// started even while the store closes (commits of accepted appends).
func (s *Store) ctxOrBackground() context.Context { return context.Background() }

// commitIndex appends the index entries of groups in one etcd transaction
// guarded by each topic's fencing token and topic record. Groups whose
// guard fails are failed with ErrFenced and the rest retried; it returns the
// committed groups.
func (w *walWriter) commitIndex(key string, groups []*group) []*group {
	s := w.s
	for _, g := range groups {
		g.l.mu.Lock()
		cum := g.l.cum
		g.l.mu.Unlock()
		for _, it := range g.items {
			cum += int64(len(it.e.Data))
		}
		g.entry = indexEntry{V: indexVersion, WAL: key, Off: g.meta.Off, Len: g.meta.Len, First: g.meta.First,
			Last: g.meta.Last, N: g.meta.Entries, CRC: g.meta.CRC, Cum: cum}
	}
	// The reference record tells garbage collection what may point into the
	// object. It lists every group of the first attempt, also on retries
	// with fewer groups: an attempt whose outcome was unknown may have
	// committed a group that a later attempt finds fenced.
	refs := walRefs{V: walRefsVersion, Refs: make([]walRef, 0, len(groups))}
	for _, g := range groups {
		refs.Refs = append(refs.Refs, walRef{L: g.l.id, F: g.entry.First})
	}
	refsJSON := mustJSON(refs)
	deadline := time.Now().Add(s.o.CommitTimeout)
	backoff := 50 * time.Millisecond
	for len(groups) > 0 {
		cmps := make([]clientv3.Cmp, 0, 2*len(groups))
		ops := make([]clientv3.Op, 0, len(groups)+1)
		for _, g := range groups {
			cmps = append(cmps, g.l.fence.Cmp(),
				clientv3.Compare(clientv3.CreateRevision(g.l.topicKey), "=", g.l.id))
			ops = append(ops, clientv3.OpPut(s.keys.index(g.l.id, g.entry.First), mustJSON(g.entry)))
		}
		ops = append(ops, clientv3.OpPut(s.keys.walRefs(key), refsJSON))
		ctx, cancel := s.attemptCtx(groups)
		resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		cancel()
		s.m.txns.Inc()
		if err == nil && resp.Succeeded {
			return groups
		}
		if err == nil {
			// Some guard failed: find which and commit the others.
			groups, err = w.dropFenced(groups)
			if err == nil {
				continue
			}
		}
		// The outcome is unknown: the puts are idempotent, so retry, but
		// not for ledgers that failed meanwhile (abandoned with a lost
		// lease: their producers get the error and resend elsewhere, which
		// deduplication covers if this attempt did commit).
		s.m.walErrors.Inc()
		if groups = dropFailed(groups); len(groups) == 0 {
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			failAll(groups, fmt.Errorf("cluster ledger: commit index of WAL object %s: %w", key, err))
			return nil
		}
		s.log.Warn("cluster ledger: index commit failed; retrying", "wal", key, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	return nil
}

// dropFenced fails the groups whose token or topic record changed and
// returns the others.
func (w *walWriter) dropFenced(groups []*group) ([]*group, error) {
	s := w.s
	ops := make([]clientv3.Op, 0, 2*len(groups))
	for _, g := range groups {
		ops = append(ops, clientv3.OpGet(g.l.fence.Key, clientv3.WithKeysOnly()),
			clientv3.OpGet(g.l.topicKey, clientv3.WithKeysOnly()))
	}
	ctx, cancel := context.WithTimeout(s.ctxOrBackground(), s.o.CallTimeout)
	resp, err := s.c.Txn(ctx).Then(ops...).Commit()
	cancel()
	s.m.txns.Inc()
	if err != nil {
		return groups, err
	}
	rev := func(i int) int64 {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0
		}
		return kvs[0].CreateRevision
	}
	keep := groups[:0:0]
	for i, g := range groups {
		owner, topic := rev(2*i), rev(2*i+1)
		switch {
		case owner != g.l.fence.Rev:
			s.m.fenced.Inc()
			err := fmt.Errorf("%w: %s (token %d, owner key %s now has revision %d)", ErrFenced, g.l.name, g.l.fence.Rev, g.l.fence.Key, owner)
			s.log.Warn("cluster ledger: fenced", "topic", g.l.name, "err", err)
			g.l.fail(err)
			finish(g, err)
		case topic != g.l.id:
			err := fmt.Errorf("%w: %s was deleted", ledger.ErrClosed, g.l.name)
			g.l.fail(err)
			finish(g, err)
		default:
			keep = append(keep, g)
		}
	}
	return keep, nil
}

func failAll(groups []*group, err error) {
	for _, g := range groups {
		g.l.fail(err)
		finish(g, err)
	}
}

// finish runs the callbacks of a group in id order.
func finish(g *group, err error) {
	for _, it := range g.items {
		if err != nil {
			it.done(-1, err)
		} else {
			it.done(it.e.ID, nil)
		}
	}
	g.l.completed(len(g.items))
}
