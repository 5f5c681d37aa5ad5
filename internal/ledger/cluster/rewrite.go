package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Rewrite of WAL data into segment objects. The owner of a topic (and only
// it: every step is guarded by the fencing token) takes the run of index
// entries that point into WAL objects, oldest first, and:
//
//  1. records the segment key it is about to write as pending
//     (pending/<ledger>/<key> in etcd), so that a crash leaves no unknown
//     object behind;
//  2. writes the entries as one segment object (ledger/object format,
//     PUT If-None-Match: *) under <objprefix>/seg/<topic>/<ledger>/<first>-<last>;
//  3. swaps the run's index entries for one segment entry and deletes the
//     pending record in one etcd transaction guarded by the fencing token,
//     the topic record and the values of the run's first and last index
//     entries (unchanged since they were read).
//
// A crash after 1 or 2 leaves a pending record: the owner (the same broker
// or the next one) deletes its object and the record before it rewrites
// again. After 3 the WAL objects may be collected (gc.go). Trimmed segment
// objects become pending records in the trim's checkpoint transaction and
// are deleted the same way.

// Rewrite rewrites, for every open ledger and every ledger of a topic whose
// bundle this broker owns but has not loaded (with Options.Fence), the WAL
// data committed before `before` into segment objects (and first deletes
// the objects of pending records); it returns the number of segment
// objects written. The
// background loop calls it every RewriteInterval; tests call it directly.
func (s *Store) Rewrite(ctx context.Context, before time.Time) (int, error) {
	s.rewriteMu.Lock() // one pass at a time: a pass owns the pending records
	defer s.rewriteMu.Unlock()
	var (
		n    int
		errs []error
	)
	for _, l := range s.openLedgers() {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		k, err := l.rewrite(ctx, before)
		n += k
		errs = append(errs, err)
	}
	k, err := s.rewriteUnloaded(ctx, before) // rewrite_unloaded.go
	return n + k, errors.Join(append(errs, err)...)
}

// rewrite cleans l's pending records, then rewrites its WAL runs committed
// before `before`; it returns the number of segment objects written.
func (l *cledger) rewrite(ctx context.Context, before time.Time) (int, error) {
	if err := l.cleanPending(ctx); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for {
		done, err := l.rewriteOnce(ctx, before)
		if err != nil {
			l.s.m.rewriteErrors.Inc()
			errs = append(errs, err)
		}
		if !done {
			return n, errors.Join(errs...)
		}
		n++
	}
}

func (s *Store) openLedgers() []*cledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := make([]*cledger, 0, len(s.ledgers))
	for _, l := range s.ledgers {
		ls = append(ls, l)
	}
	return ls
}

// segmentKey is <objprefix>/seg/<topic, "://" as "/">/<ledger>/<first>-<last>.
func (s *Store) segmentKey(topic string, id, first, last int64) string {
	return fmt.Sprintf("%s/seg/%s/%d/%d-%d", s.o.ObjectPrefix, strings.Replace(topic, "://", "/", 1), id, first, last)
}

// rewriteOnce rewrites the oldest run of WAL index entries committed
// before `before`; it reports whether it wrote a segment.
func (l *cledger) rewriteOnce(ctx context.Context, before time.Time) (bool, error) {
	s := l.s
	l.mu.Lock()
	if l.closed || l.failed != nil {
		l.mu.Unlock()
		return false, nil
	}
	var run []indexEntry
	bytes := int64(0)
	for i, e := range l.index {
		if e.Seg != "" {
			if len(run) > 0 {
				break
			}
			continue
		}
		if !l.committedAt[e.First].Before(before) || (len(run) > 0 && bytes >= s.o.SegmentMaxBytes) {
			break
		}
		run = append(run, e)
		prev := l.trimmedBytes
		if i > 0 {
			prev = l.index[i-1].Cum
		}
		bytes += e.Cum - prev
	}
	l.mu.Unlock()
	if len(run) == 0 {
		return false, nil
	}
	var entries []ledger.Entry
	for _, e := range run {
		es, err := l.blockEntries(ctx, e)
		if err != nil {
			return false, fmt.Errorf("cluster ledger: rewrite %s: %w", l.name, err)
		}
		entries = append(entries, es...)
	}
	first, last := run[0].First, run[len(run)-1].Last
	key := s.segmentKey(l.name, l.id, first, last)
	obj, err := object.Encode(object.Header{LedgerID: l.id, First: first, Last: last}, entries, s.o.SegmentBlockBytes)
	if err != nil {
		return false, fmt.Errorf("cluster ledger: rewrite %s: %w", l.name, err)
	}
	// 1. pending record
	if err := l.commitOps(ctx, []clientv3.Op{clientv3.OpPut(s.keys.pending(l.id, key), "")}); err != nil {
		return false, err
	}
	if s.crash("rewrite:pending") {
		return false, errCrash
	}
	// 2. the object (a crashed attempt may have left one under this key)
	if err := s.putObject(ctx, key, obj); err != nil {
		l.markPending()
		return false, fmt.Errorf("cluster ledger: rewrite %s: %w", l.name, err)
	}
	if s.crash("rewrite:put") {
		return false, errCrash
	}
	// 3. the swap
	seg := indexEntry{V: segIndexVersion, Seg: key, Size: int64(len(obj)), First: first, Last: last,
		N: len(entries), Cum: run[len(run)-1].Cum}
	firstKey, lastKey := s.keys.index(l.id, first), s.keys.index(l.id, run[len(run)-1].First)
	ops := []clientv3.Op{clientv3.OpPut(firstKey, mustJSON(seg)), clientv3.OpDelete(s.keys.pending(l.id, key))}
	if len(run) > 1 {
		ops = append(ops, clientv3.OpDelete(s.keys.index(l.id, run[1].First), clientv3.WithRange(s.keys.index(l.id, last+1))))
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	if l.isClosed() {
		// Close checkpoints under ckMu after marking the ledger closed: a
		// swap now could follow a reopening's read of the index.
		return false, nil
	}
	cctx, cancel := s.callCtx(ctx)
	resp, err := s.c.Txn(cctx).If(l.fence.Cmp(),
		clientv3.Compare(clientv3.CreateRevision(l.topicKey), "=", l.id),
		clientv3.Compare(clientv3.Value(firstKey), "=", mustJSON(run[0])),
		clientv3.Compare(clientv3.Value(lastKey), "=", mustJSON(run[len(run)-1]))).
		Then(ops...).Commit()
	cancel()
	s.m.txns.Inc()
	if err != nil || !resp.Succeeded {
		l.markPending() // unknown outcome or refused: the pending record decides
		if err == nil {
			err = errors.New("the index changed (trimmed, or another owner)")
		}
		return false, fmt.Errorf("cluster ledger: rewrite %s: swap index: %w", l.name, err)
	}
	s.m.rewriteSegments.Inc()
	s.m.rewriteBytes.Add(float64(len(obj)))
	l.swapped(seg)
	return true, nil
}

// blockEntries reads the entries of one index entry (a WAL block or a
// whole segment object).
func (l *cledger) blockEntries(ctx context.Context, e indexEntry) ([]ledger.Entry, error) {
	if e.Seg == "" {
		return l.s.cache.Block(ctx, e.WAL, e.meta())
	}
	x, err := l.s.cache.Index(ctx, e.ref())
	if err != nil {
		return nil, err
	}
	var out []ledger.Entry
	for _, b := range x.Blocks {
		es, err := l.s.cache.Block(ctx, e.Seg, b)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// swapped replaces the index entries [seg.First, seg.Last] held in memory
// by seg (some may have been trimmed meanwhile).
func (l *cledger) swapped(seg indexEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, j := -1, 0
	for k, e := range l.index {
		if e.First >= seg.First && e.Last <= seg.Last {
			if i < 0 {
				i = k
			}
			j = k + 1
			delete(l.committedAt, e.First)
		}
	}
	if i < 0 { // all trimmed in memory: the next trim checkpoint drops it
		l.segGarbage = append(l.segGarbage, seg.Seg)
		return
	}
	// A new slice: readers hold sub-slices of the old one.
	ni := make([]indexEntry, 0, len(l.index)-(j-i)+1)
	ni = append(append(append(ni, l.index[:i]...), seg), l.index[j:]...)
	l.index = ni
}

func (l *cledger) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *cledger) markPending() {
	l.mu.Lock()
	l.pendingDirty = true
	l.mu.Unlock()
}

// cleanPending deletes the objects of l's pending records, then the
// records: none is referenced by the index (see the top of this file).
func (l *cledger) cleanPending(ctx context.Context) error {
	s := l.s
	l.mu.Lock()
	dirty := l.pendingDirty
	l.pendingDirty = false
	l.mu.Unlock()
	if !dirty {
		return nil
	}
	cctx, cancel := s.callCtx(ctx)
	resp, err := s.c.Get(cctx, s.keys.pendingDir(l.id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		l.markPending()
		return fmt.Errorf("cluster ledger: read pending objects of %s: %w", l.name, err)
	}
	for _, kv := range resp.Kvs {
		key, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), s.keys.pendingDir(l.id)))
		if err != nil {
			return fmt.Errorf("cluster ledger: pending key %q: %w", kv.Key, err)
		}
		if err := s.deleteObject(ctx, key); err != nil {
			l.markPending()
			return err
		}
		s.m.segmentsDeleted.Inc()
		if s.crash("pending:delete") {
			return errCrash
		}
		cctx, cancel := s.callCtx(ctx)
		_, err = s.c.Delete(cctx, string(kv.Key))
		cancel()
		s.m.txns.Inc()
		if err != nil {
			l.markPending()
			return fmt.Errorf("cluster ledger: delete pending record %s: %w", kv.Key, err)
		}
	}
	return nil
}

// putObject writes a segment object once; an object left under the key by
// a crashed attempt (its pending record still there) is replaced.
func (s *Store) putObject(ctx context.Context, key string, data []byte) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := s.callCtx(ctx)
		err := s.o.Objects.Put(cctx, key, data, true)
		cancel()
		if err == nil || !errors.Is(err, object.ErrObjectExists) || attempt > 0 {
			return err
		}
		if err := s.deleteObject(ctx, key); err != nil {
			return err
		}
	}
}

func (s *Store) deleteObject(ctx context.Context, key string) error {
	s.cache.Forget(key)
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	if err := s.o.Objects.Delete(cctx, key); err != nil {
		return fmt.Errorf("cluster ledger: delete object %s: %w", key, err)
	}
	return nil
}

// errCrash ends a step where a test's crash hook stopped it.
var errCrash = errors.New("cluster ledger: stopped by a crash point (test)")

// crash reports whether a test stops the process at point.
func (s *Store) crash(point string) bool {
	return s.crashHook != nil && s.crashHook(point)
}
