package functions

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/meta"
)

// metaState is a function's durable state in the metadata store: each key
// one record, written with the store's durability (fsync in the embedded
// store, a raft commit in etcd), so it survives kill -9. Incr is a
// compare-and-set loop, atomic across instances and nodes.
type metaState struct {
	meta   meta.Store
	prefix string // /functions/state/<fqfn>/
}

func newState(m meta.Store, fqfn string) *metaState {
	return &metaState{meta: m, prefix: prefixState + fqfn + "/"}
}

// Keys are path-escaped: a state key may hold '/' and any byte.
func (s *metaState) key(k string) string { return s.prefix + url.PathEscape(k) }

func (s *metaState) Get(ctx context.Context, k string) ([]byte, bool, error) {
	kv, err := s.meta.Get(ctx, s.key(k))
	if errors.Is(err, meta.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state get %q: %w", k, err)
	}
	return kv.Value, true, nil
}

// getVersion returns the value and its version (for the state endpoint).
func (s *metaState) getVersion(ctx context.Context, k string) ([]byte, int64, error) {
	kv, err := s.meta.Get(ctx, s.key(k))
	if err != nil {
		return nil, 0, err
	}
	return kv.Value, kv.Version, nil
}

func (s *metaState) Put(ctx context.Context, k string, v []byte) error {
	if _, err := s.meta.Put(ctx, s.key(k), v, meta.AnyVersion); err != nil {
		return fmt.Errorf("state put %q: %w", k, err)
	}
	return nil
}

func (s *metaState) Delete(ctx context.Context, k string) error {
	err := s.meta.Delete(ctx, s.key(k), meta.AnyVersion)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("state delete %q: %w", k, err)
	}
	return nil
}

func (s *metaState) Incr(ctx context.Context, k string, delta int64) (int64, error) {
	key := s.key(k)
	for {
		var n, version int64 = 0, meta.NotExists
		kv, err := s.meta.Get(ctx, key)
		switch {
		case errors.Is(err, meta.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("state incr %q: %w", k, err)
		default:
			if n, err = wasm.DecodeCounter(kv.Value); err != nil {
				return 0, fmt.Errorf("state incr %q: %w", k, err)
			}
			version = kv.Version
		}
		n += delta
		_, err = s.meta.Put(ctx, key, wasm.EncodeCounter(n), version)
		if errors.Is(err, meta.ErrBadVersion) {
			continue // another instance won the race: read again
		}
		if err != nil {
			return 0, fmt.Errorf("state incr %q: %w", k, err)
		}
		return n, nil
	}
}

// deleteAll removes every key of the function.
func (s *metaState) deleteAll(ctx context.Context) error {
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
