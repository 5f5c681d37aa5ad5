// Package meta is the metadata store: versioned key-value records with
// compare-and-set, prefix listing and watches. It holds clusters, tenants,
// namespaces and their policies, partitioned-topic metadata and topics' schema
// versions (schemas.go). The embedded
// implementation (Pebble) serves standalone mode; package meta/etcd keeps the
// same records in etcd behind the same interface, and package meta/metatest
// is the conformance suite both pass.
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
	// EventReset says the watch may have missed changes (the store
	// compacted the history it was reading, or the watch had to be
	// re-established): whatever the receiver derived from earlier events
	// or reads may be stale, and it must read (list) again. Its KV is
	// empty; the watch goes on delivering changes after it.
	EventReset
)

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	KV   KV
	// Revision orders the changes of one store: it grows with every write
	// (etcd's mod revision; in the embedded store a count of the writes
	// since it was opened). For EventReset it is the revision from which
	// changes are delivered again.
	Revision int64
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
	// Watch delivers changes under prefix until ctx ends, then closes the
	// channel. Slow receivers lose nothing: the channel is buffered and the
	// sender blocks. When changes may have been missed the watch delivers
	// an EventReset and goes on: receivers that cache must then re-read.
	Watch(ctx context.Context, prefix string) <-chan Event
	Close() error
}
