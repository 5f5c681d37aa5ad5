package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Rewrite of topics no broker has loaded. Their index entries pointing into
// WAL objects would pin those objects (shared with every other topic of the
// group commit) until the topic loads again. So each rewrite pass also
// looks at the topics this broker may fence (Options.Fence answers: their
// bundle is owned here) but has not opened: when the index of one still
// points into WAL objects, or it has pending records, the topic's ledger is
// opened for the pass only (transient), rewritten like an open one, and
// closed again. Should the broker open the topic meanwhile, Open hands it
// the same ledger and the pass leaves it open. With the store's own
// per-topic owner keys (no Options.Fence) a topic is owned only while open,
// so there is nothing more to do.

// rewriteUnloaded rewrites the WAL data of the topics this broker owns but
// has not opened; it returns the number of segment objects written.
func (s *Store) rewriteUnloaded(ctx context.Context, before time.Time) (int, error) {
	if s.o.Fence == nil {
		return 0, nil
	}
	cctx, cancel := s.callCtx(ctx)
	resp, err := s.c.Get(cctx, s.keys.topics(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("cluster ledger: list topics: %w", err)
	}
	n := 0
	var errs []error
	seen := make(map[int64]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		id := kv.CreateRevision
		seen[id] = true
		topic, err := topicFromKey(s.keys, string(kv.Key))
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster ledger: topic key %q: %w", kv.Key, err))
			continue
		}
		f, err := s.o.Fence(ctx, topic)
		if err != nil {
			continue // another broker's (or nobody's): its owner rewrites it
		}
		// A topic found done under this token needs no look until it is
		// opened (Open forgets the mark) or its bundle changes hands. The
		// mark is set before the look: an Open meanwhile clears it.
		s.mu.Lock()
		skip := s.closed || s.ledgers[topic] != nil || s.unloadedDone[id] == f.Rev
		if !skip {
			s.unloadedDone[id] = f.Rev
		}
		s.mu.Unlock()
		if skip {
			continue // open ones are rewritten as such
		}
		need, err := s.needsRewrite(ctx, id)
		if need && err == nil {
			var k int
			k, err = s.rewriteTransient(ctx, topic, before)
			n += k
		}
		if err != nil {
			s.forgetDone(id)
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	for id := range s.unloadedDone {
		if !seen[id] { // deleted topics
			delete(s.unloadedDone, id)
		}
	}
	s.mu.Unlock()
	return n, errors.Join(errs...)
}

func (s *Store) forgetDone(id int64) {
	s.mu.Lock()
	delete(s.unloadedDone, id)
	s.mu.Unlock()
}

// needsRewrite reports whether ledger id has an index entry pointing into a
// WAL object or a pending record (one etcd transaction).
func (s *Store) needsRewrite(ctx context.Context, id int64) (bool, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.c.Txn(cctx).Then(
		clientv3.OpGet(s.keys.indexDir(id), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.pendingDir(id), clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	s.m.txns.Inc()
	if err != nil {
		return false, fmt.Errorf("cluster ledger: read index of ledger %d: %w", id, err)
	}
	if resp.Responses[1].GetResponseRange().Count > 0 {
		return true, nil
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var e indexEntry
		if err := decodeIndex(kv.Value, string(kv.Key), &e); err != nil {
			return false, err
		}
		if e.Seg == "" {
			return true, nil
		}
	}
	return false, nil
}

// rewriteTransient opens topic's ledger for one rewrite and closes it
// again, unless the broker opened the topic meanwhile.
func (s *Store) rewriteTransient(ctx context.Context, topic string, before time.Time) (int, error) {
	l, err := s.load(ctx, topic, false)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil // deleted meanwhile
	}
	if err != nil {
		return 0, err
	}
	l.transient = true
	s.mu.Lock()
	if s.closed || s.ledgers[topic] != nil { // the broker opened it meanwhile: the next pass
		s.mu.Unlock()
		return 0, nil
	}
	s.ledgers[topic] = l
	s.mu.Unlock()
	n, err := l.rewrite(ctx, before)
	s.mu.Lock()
	done := l.transient && s.ledgers[topic] == l
	if done {
		delete(s.ledgers, topic)
	}
	s.mu.Unlock()
	if done {
		l.Close() // nothing to checkpoint; forgets nothing more
	}
	s.m.rewriteUnloaded.Inc()
	return n, err
}
