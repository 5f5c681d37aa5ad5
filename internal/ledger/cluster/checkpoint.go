package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxCheckpointOps keeps a checkpoint transaction below etcd's default
// --max-txn-ops (128).
const maxCheckpointOps = 100

// checkpointLoop checkpoints the cursors and trims of every open ledger
// every CursorFlush.
func (s *Store) checkpointLoop() {
	t := time.NewTicker(s.o.CursorFlush)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ls := make([]*cledger, 0, len(s.ledgers))
		for _, l := range s.ledgers {
			ls = append(ls, l)
		}
		s.mu.Unlock()
		for _, l := range ls {
			if err := l.checkpoint(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("cluster ledger: cursor checkpoint failed", "topic", l.name, "err", err)
			}
		}
	}
}

// checkpoint writes the dirty cursors and the trim point of l in
// transactions guarded by its fencing token; what fails stays dirty.
func (l *cledger) checkpoint(ctx context.Context) error {
	s := l.s
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.Lock()
	if len(l.dirty) == 0 && !l.trimDirty {
		l.mu.Unlock()
		return nil
	}
	dirty := l.dirty
	l.dirty = map[string][]byte{}
	trim := l.trimDirty
	l.trimDirty = false
	var garbage []string
	if trim {
		garbage, l.segGarbage = l.segGarbage, nil
	}
	rec := topicRecord{V: topicVersion, First: l.first, TrimmedBytes: l.trimmedBytes}
	keepFrom := l.first
	if n := len(l.index); n > 0 {
		keepFrom = min(keepFrom, l.index[0].First)
	}
	l.mu.Unlock()

	var ops []clientv3.Op
	if trim {
		ops = append(ops, clientv3.OpPut(l.topicKey, mustJSON(rec)),
			clientv3.OpDelete(s.keys.indexDir(l.id), clientv3.WithRange(s.keys.index(l.id, keepFrom))))
		// Trimmed segment objects become pending records in the same
		// transaction; the rewrite pass deletes them (rewrite.go).
		for _, key := range garbage {
			ops = append(ops, clientv3.OpPut(s.keys.pending(l.id, key), ""))
		}
	}
	for name, b := range dirty {
		if b == nil {
			ops = append(ops, clientv3.OpDelete(s.keys.cursor(l.id, name)))
		} else {
			ops = append(ops, clientv3.OpPut(s.keys.cursor(l.id, name), string(b)))
		}
	}
	var err error
	for len(ops) > 0 && err == nil {
		n := min(len(ops), maxCheckpointOps)
		err = l.commitOps(ctx, ops[:n])
		ops = ops[n:]
	}
	if err != nil && !errors.Is(err, ErrFenced) {
		l.mu.Lock()
		for name, b := range dirty {
			if _, newer := l.dirty[name]; !newer {
				l.dirty[name] = b
			}
		}
		l.trimDirty = l.trimDirty || trim
		l.segGarbage = append(garbage, l.segGarbage...)
		l.mu.Unlock()
	}
	if err == nil && len(garbage) > 0 {
		l.markPending()
	}
	return err
}

func (l *cledger) commitOps(ctx context.Context, ops []clientv3.Op) error {
	s := l.s
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.c.Txn(cctx).If(l.fence.Cmp(), clientv3.Compare(clientv3.CreateRevision(l.topicKey), "=", l.id)).
		Then(ops...).Commit()
	s.m.txns.Inc()
	if err != nil {
		return fmt.Errorf("cluster ledger: checkpoint %s: %w", l.name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: checkpoint of %s refused", ErrFenced, l.name)
	}
	s.m.cursorCommits.Inc()
	return nil
}

// SyncCursors implements ledger.CursorSyncer: the cursors saved so far are
// committed now rather than at the next checkpoint. The broker asks it for
// cursors a crash must not lose: the compaction cursor naming a new
// compacted ledger (lost to a kill -9 before the checkpoint, the next owner
// would read the topic uncompacted and delete that ledger as a leftover), a
// new replication cursor, a deduplication snapshot.
func (l *cledger) SyncCursors() error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ledger.ErrClosed
	}
	return l.checkpoint(l.s.ctx)
}
