package functions

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/meta"
)

// metaState is a function's durable state in the metadata store, each key
// one record, shared by the function's instances on this node.
//
// Writes are grouped: Put, Delete and Incr change an in-memory overlay at
// once (every instance reads its own and the others' writes), and flush
// makes the overlay durable in one write of the store (one fsync in the
// embedded store, through meta.Batcher) before the worker acknowledges the
// inputs of the batch that made them. So a write can be lost with a crash
// only together with the acknowledgement of its input, which is then
// redelivered.
//
// Incr stays atomic across instances and nodes: a counter changed only by
// Incr since the last flush is written with the version it was read at,
// and on a conflict (another node wrote it) re-read and the delta applied
// again, so no increment is lost. The value Incr returns counts the
// increments this node has seen.
type metaState struct {
	meta   meta.Store
	prefix string // /functions/state/<fqfn>/

	mu    sync.Mutex
	dirty map[string]*pendingWrite // by store key
}

// pendingWrite is an unflushed change of one key: a value (put), a
// delete, or a counter delta over the stored value of a known version.
type pendingWrite struct {
	value   []byte
	deleted bool
	counter bool  // only Incr since the last flush: base+delta at version
	base    int64 // the stored counter when read
	delta   int64
	version int64 // the stored version (meta.NotExists when absent)
}

func newState(m meta.Store, fqfn string) *metaState {
	return &metaState{meta: m, prefix: prefixState + fqfn + "/", dirty: map[string]*pendingWrite{}}
}

// Keys are path-escaped: a state key may hold '/' and any byte.
func (s *metaState) key(k string) string { return s.prefix + url.PathEscape(k) }

func (s *metaState) Get(ctx context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.dirty[s.key(k)]; ok {
		switch {
		case p.deleted:
			return nil, false, nil
		case p.counter:
			return wasm.EncodeCounter(p.base + p.delta), true, nil
		}
		return p.value, true, nil
	}
	kv, err := s.meta.Get(ctx, s.key(k))
	if errors.Is(err, meta.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state get %q: %w", k, err)
	}
	return kv.Value, true, nil
}

// getVersion returns the stored value and its version (for the state
// endpoint, which shows what is durable).
func (s *metaState) getVersion(ctx context.Context, k string) ([]byte, int64, error) {
	kv, err := s.meta.Get(ctx, s.key(k))
	if err != nil {
		return nil, 0, err
	}
	return kv.Value, kv.Version, nil
}

func (s *metaState) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty[s.key(k)] = &pendingWrite{value: v}
	return nil
}

func (s *metaState) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty[s.key(k)] = &pendingWrite{deleted: true}
	return nil
}

func (s *metaState) Incr(ctx context.Context, k string, delta int64) (int64, error) {
	key := s.key(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.dirty[key]; ok {
		if p.counter {
			p.delta += delta
			return p.base + p.delta, nil
		}
		var n int64
		if !p.deleted {
			var err error
			if n, err = wasm.DecodeCounter(p.value); err != nil {
				return 0, fmt.Errorf("state incr %q: %w", k, err)
			}
		}
		n += delta
		*p = pendingWrite{value: wasm.EncodeCounter(n)}
		return n, nil
	}
	p, err := s.readCounter(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("state incr %q: %w", k, err)
	}
	p.delta = delta
	s.dirty[key] = p
	return p.base + p.delta, nil
}

// readCounter reads key's stored counter and version.
func (s *metaState) readCounter(ctx context.Context, key string) (*pendingWrite, error) {
	p := &pendingWrite{counter: true, version: meta.NotExists}
	kv, err := s.meta.Get(ctx, key)
	switch {
	case errors.Is(err, meta.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if p.base, err = wasm.DecodeCounter(kv.Value); err != nil {
			return nil, err
		}
		p.version = kv.Version
	}
	return p, nil
}

// flush makes every pending write durable, in one write of the store when
// it is a meta.Batcher. On an error the writes stay pending (the caller
// does not acknowledge the inputs that made them).
func (s *metaState) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	b, ok := s.meta.(meta.Batcher)
	for attempt := 0; ; attempt++ {
		var err error
		if ok {
			err = b.Batch(ctx, s.ops())
		} else {
			err = s.writeEach(ctx)
		}
		if err == nil {
			clear(s.dirty)
			return nil
		}
		if !errors.Is(err, meta.ErrBadVersion) || attempt == 100 {
			return fmt.Errorf("state write: %w", err)
		}
		// Another node changed a counter: apply the deltas to its value.
		if err := s.rereadCounters(ctx); err != nil {
			return fmt.Errorf("state write: %w", err)
		}
	}
}

func (s *metaState) ops() []meta.Op {
	ops := make([]meta.Op, 0, len(s.dirty))
	for key, p := range s.dirty {
		switch {
		case p.deleted:
			ops = append(ops, meta.Op{Key: key, Delete: true, Expected: meta.AnyVersion})
		case p.counter:
			ops = append(ops, meta.Op{Key: key, Value: wasm.EncodeCounter(p.base + p.delta), Expected: p.version})
		default:
			ops = append(ops, meta.Op{Key: key, Value: p.value, Expected: meta.AnyVersion})
		}
	}
	return ops
}

// writeEach is flush on a store without batches: one write per key, the
// written ones dropped from the overlay as they go.
func (s *metaState) writeEach(ctx context.Context) error {
	for _, op := range s.ops() {
		var err error
		if op.Delete {
			err = s.meta.Delete(ctx, op.Key, op.Expected)
			if errors.Is(err, meta.ErrNotFound) {
				err = nil
			}
		} else {
			_, err = s.meta.Put(ctx, op.Key, op.Value, op.Expected)
		}
		if err != nil {
			return err
		}
		delete(s.dirty, op.Key)
	}
	return nil
}

func (s *metaState) rereadCounters(ctx context.Context) error {
	for key, p := range s.dirty {
		if !p.counter {
			continue
		}
		cur, err := s.readCounter(ctx, key)
		if err != nil {
			return err
		}
		p.base, p.version = cur.base, cur.version
	}
	return nil
}

// deleteAll removes every key of the function.
func (s *metaState) deleteAll(ctx context.Context) error {
	s.mu.Lock()
	clear(s.dirty)
	s.mu.Unlock()
	kvs, err := s.meta.List(ctx, s.prefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := s.meta.Delete(ctx, kv.Key, meta.AnyVersion); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	return nil
}
