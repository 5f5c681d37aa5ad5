package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WAL garbage collection. The transaction that commits a WAL object's
// index entries also writes its reference record, walrefs/<object key>,
// listing the (ledger, first entry id) of every index entry it added: a
// WAL object is referenced only through those keys, and none can be added
// later. Once none of them points into the object any more (rewritten into
// a segment, trimmed, or the topic deleted), the object is deleted, then
// its record (guarded by the record's mod revision). A crash between the
// two leaves the record: the next pass finds it unreferenced again and
// deletes both (deleting a missing object is not an error). Any broker may
// collect any broker's WAL objects: every step is idempotent.

// walRefs is the value of a WAL object's reference record.
type walRefs struct {
	V    int      `json:"v"`
	Refs []walRef `json:"refs"`
}

type walRef struct {
	L int64 `json:"l"` // ledger id
	F int64 `json:"f"` // first entry id of the index entry
}

const walRefsVersion = 1

// gcPage bounds the records one etcd read returns.
const gcPage = 500

// CollectWAL deletes the WAL objects no index entry points into any more
// and returns how many it deleted. The background loop calls it every
// GCInterval; tests call it directly.
func (s *Store) CollectWAL(ctx context.Context) (int, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	dir := s.keys.walRefsDir()
	from, end := dir, clientv3.GetPrefixRangeEnd(dir)
	deleted := 0
	for {
		cctx, cancel := s.callCtx(ctx)
		resp, err := s.c.Get(cctx, from, clientv3.WithRange(end), clientv3.WithLimit(gcPage))
		cancel()
		if err != nil {
			s.m.gcErrors.Inc()
			return deleted, fmt.Errorf("cluster ledger: read WAL references: %w", err)
		}
		for _, kv := range resp.Kvs {
			n, err := s.collectOne(ctx, string(kv.Key), kv.Value, kv.ModRevision)
			deleted += n
			if err != nil {
				s.m.gcErrors.Inc()
				return deleted, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return deleted, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// collectOne deletes one WAL object and its record when unreferenced.
func (s *Store) collectOne(ctx context.Context, recKey string, val []byte, modRev int64) (int, error) {
	walKey := strings.TrimPrefix(recKey, s.keys.walRefsDir())
	var rec walRefs
	if err := json.Unmarshal(val, &rec); err != nil || rec.V != walRefsVersion {
		return 0, fmt.Errorf("cluster ledger: WAL reference record %s (version %d): %v", recKey, rec.V, err)
	}
	referenced, err := s.referenced(ctx, walKey, rec.Refs)
	if err != nil || referenced {
		return 0, err
	}
	if err := s.deleteObject(ctx, walKey); err != nil {
		return 0, err
	}
	s.m.gcDeleted.Inc()
	if s.crash("gc:delete") {
		return 1, errCrash
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err = s.c.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(recKey), "=", modRev)).
		Then(clientv3.OpDelete(recKey)).Commit()
	s.m.txns.Inc()
	if err != nil {
		return 1, fmt.Errorf("cluster ledger: delete WAL reference record %s: %w", recKey, err)
	}
	return 1, nil
}

// referenced reports whether an index entry listed in refs still points
// into walKey.
func (s *Store) referenced(ctx context.Context, walKey string, refs []walRef) (bool, error) {
	for len(refs) > 0 {
		n := min(len(refs), maxCheckpointOps)
		ops := make([]clientv3.Op, n)
		for i, r := range refs[:n] {
			ops[i] = clientv3.OpGet(s.keys.index(r.L, r.F))
		}
		cctx, cancel := s.callCtx(ctx)
		resp, err := s.c.Txn(cctx).Then(ops...).Commit()
		cancel()
		s.m.txns.Inc()
		if err != nil {
			return true, fmt.Errorf("cluster ledger: read index entries of %s: %w", walKey, err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				var e indexEntry
				if err := decodeIndex(kv.Value, string(kv.Key), &e); err != nil {
					return true, err
				}
				if e.Seg == "" && e.WAL == walKey {
					return true, nil
				}
			}
		}
		refs = refs[n:]
	}
	return false, nil
}
