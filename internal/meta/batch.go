package meta

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Op is one write of a batch: a put of Value, or a delete, when the stored
// version equals Expected (AnyVersion: always; NotExists: only when absent).
type Op struct {
	Key      string
	Value    []byte
	Delete   bool
	Expected int64
}

// Batcher is implemented by stores that apply many writes atomically and
// durably in one commit (one fsync). Callers fall back to one write per op
// on a store without it.
type Batcher interface {
	// Batch applies every op or none: when one op's expected version does
	// not match, it returns an error wrapping ErrBadVersion and writes
	// nothing. Deleting an absent key is not an error.
	Batch(ctx context.Context, ops []Op) error
}

// Batch implements Batcher: the versions are checked and the writes made
// under the store's lock, in one synced Pebble batch.
func (e *Embedded) Batch(_ context.Context, ops []Op) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	b := e.db.NewBatch()
	defer b.Close()
	events := make([]Event, 0, len(ops))
	next := map[string]int64{} // versions written earlier in this batch
	for _, op := range ops {
		cur, ok := next[op.Key]
		if !ok {
			var err error
			if cur, err = e.currentVersion(op.Key); err != nil {
				return err
			}
		}
		if op.Expected != AnyVersion && op.Expected != cur {
			return fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, op.Key, cur, op.Expected)
		}
		if op.Delete {
			next[op.Key] = 0
			if cur == 0 {
				continue
			}
			if err := b.Delete([]byte(op.Key), nil); err != nil {
				return err
			}
			events = append(events, Event{Type: EventDelete, KV: KV{Key: op.Key, Version: cur}})
			continue
		}
		next[op.Key] = cur + 1
		if err := b.Set([]byte(op.Key), encodeValue(cur+1, op.Value), nil); err != nil {
			return err
		}
		events = append(events, Event{Type: EventPut, KV: KV{Key: op.Key, Value: op.Value, Version: cur + 1}})
	}
	if len(events) == 0 {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("meta batch of %d writes: %w", len(events), err)
	}
	for _, ev := range events {
		e.rev++
		ev.Revision = e.rev
		e.notify(ev)
	}
	return nil
}
