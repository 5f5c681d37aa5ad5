package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Orphan sweep. Two kinds of objects can outlive every etcd record that
// leads to them, so neither the WAL collection (gc.go) nor a topic's own
// cleanup ever finds them:
//   - a WAL object whose broker died between its PUT and the transaction
//     that commits its index entries and its reference record;
//   - the segment objects of a topic whose deletion committed in etcd
//     before the broker died, or failed, deleting them.
//
// A WAL object without its record may still be on its way to being
// committed, so the sweep deletes only what two passes at least
// OrphanGrace apart both found unreferenced (a commit is given up after
// CommitTimeout, far less than the grace). Segment objects of a ledger
// that no longer exists can never become referenced again (a re-created
// topic gets a new ledger id). Every step is idempotent: any broker may
// sweep, and several may at once.

// SweepOrphans deletes the WAL and segment objects of this store's object
// prefix that no etcd record leads to and that an earlier pass, at least
// OrphanGrace before, found unreferenced too; it returns how many it
// deleted. The background loop calls it every OrphanInterval; tests call
// it directly.
func (s *Store) SweepOrphans(ctx context.Context) (int, error) {
	ls, ok := s.o.Objects.(object.Lister)
	if !ok {
		return 0, fmt.Errorf("cluster ledger: the object store cannot list objects")
	}
	s.orphanMu.Lock()
	defer s.orphanMu.Unlock()
	unref := map[string]bool{}

	walRecs, err := s.keysUnder(ctx, s.keys.walRefsDir())
	if err != nil {
		return 0, err
	}
	wals, err := s.list(ctx, ls, s.o.ObjectPrefix+"/wal/")
	if err != nil {
		return 0, err
	}
	for _, key := range wals {
		if !walRecs[s.keys.walRefs(key)] {
			unref[key] = true
		}
	}

	live, err := s.liveLedgers(ctx)
	if err != nil {
		return 0, err
	}
	segs, err := s.list(ctx, ls, s.o.ObjectPrefix+"/seg/")
	if err != nil {
		return 0, err
	}
	for _, key := range segs {
		if id, ok := segmentLedger(key); ok && !live[id] {
			unref[key] = true
		}
	}

	now := time.Now()
	deleted := 0
	for key := range s.orphanSeen {
		if !unref[key] {
			delete(s.orphanSeen, key) // referenced after all, or gone
		}
	}
	for key := range unref {
		first, seen := s.orphanSeen[key]
		if !seen {
			s.orphanSeen[key] = now
			continue
		}
		if now.Sub(first) < s.o.OrphanGrace {
			continue
		}
		if err := s.deleteObject(ctx, key); err != nil {
			return deleted, err
		}
		delete(s.orphanSeen, key)
		s.m.orphansDeleted.Inc()
		s.log.Info("cluster ledger: orphan object deleted", "key", key, "unreferenced_since", first)
		deleted++
	}
	return deleted, nil
}

// list returns the keys of the objects under prefix; a listing takes a
// request per thousand keys, hence its longer deadline.
func (s *Store) list(ctx context.Context, ls object.Lister, prefix string) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*s.o.CallTimeout)
	defer cancel()
	infos, err := ls.List(cctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("cluster ledger: list %s: %w", prefix, err)
	}
	keys := make([]string, len(infos))
	for i, o := range infos {
		keys[i] = o.Key
	}
	return keys, nil
}

// keysUnder returns the etcd keys under prefix (keys only, in pages).
func (s *Store) keysUnder(ctx context.Context, prefix string) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.scanKeys(ctx, prefix, func(key string, _ int64) { out[key] = true })
	return out, err
}

// liveLedgers returns the ids of the ledgers whose topic record exists (a
// ledger's id is its topic key's create revision).
func (s *Store) liveLedgers(ctx context.Context) (map[int64]bool, error) {
	out := map[int64]bool{}
	err := s.scanKeys(ctx, s.keys.topics(), func(_ string, createRev int64) { out[createRev] = true })
	return out, err
}

// scanKeys calls fn with every key under prefix and its create revision.
func (s *Store) scanKeys(ctx context.Context, prefix string, fn func(key string, createRev int64)) error {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		cctx, cancel := s.callCtx(ctx)
		resp, err := s.c.Get(cctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(gcPage))
		cancel()
		if err != nil {
			return fmt.Errorf("cluster ledger: read %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.CreateRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// segmentLedger parses the ledger id out of a segment object key
// (<prefix>/seg/<topic path>/<ledger id>/<first>-<last>, segmentKey).
func segmentLedger(key string) (int64, bool) {
	parts := strings.Split(key, "/")
	if len(parts) < 3 || !strings.Contains(parts[len(parts)-1], "-") {
		return 0, false
	}
	id, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	return id, err == nil && id > 0
}
