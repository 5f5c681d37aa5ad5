// Package meta is the metadata store: versioned key-value records with
// compare-and-set, prefix listing and watches. It holds clusters, tenants,
// namespaces and their policies, and partitioned-topic metadata. The embedded
// implementation (Pebble) serves standalone mode; an etcd implementation will
// serve cluster mode behind the same interface.
//
// meta depends on no other package of the project except naming.
package meta

import (
	"context"
	"errors"
)

// Errors of Store operations.
var (
	ErrNotFound   = errors.New("meta: not found")
	ErrBadVersion = errors.New("meta: version mismatch")
	ErrClosed     = errors.New("meta: closed")
)

// Version values with special meaning in Put and Delete.
const (
	AnyVersion int64 = -1 // no compare
	NotExists  int64 = 0  // Put only if the key does not exist yet
)

// KV is one record.
type KV struct {
	Key     string
	Value   []byte
	Version int64 // starts at 1, +1 per Put
}

// EventType says what happened to a watched key.
type EventType int

// Event types.
const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	KV   KV
}

// Store is a versioned key-value store. Keys are /-separated paths.
type Store interface {
	Get(ctx context.Context, key string) (KV, error)
	// Put writes value when the stored version equals expected (AnyVersion:
	// always; NotExists: only when absent) and returns the new version.
	Put(ctx context.Context, key string, value []byte, expected int64) (int64, error)
	// Delete removes key when the stored version equals expected (or AnyVersion).
	Delete(ctx context.Context, key string, expected int64) error
	// List returns the records whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]KV, error)
	// Watch delivers changes under prefix until ctx ends. Slow receivers lose
	// nothing: the channel is buffered and the sender blocks.
	Watch(ctx context.Context, prefix string) <-chan Event
	Close() error
}
