// Package objstore is a thin object-store client shared by tiered storage
// (and later cluster mode and the lake sink): Put (optionally write-once),
// ranged Get, Delete and List, each bounded by a context deadline. S3 (any
// S3-compatible server) is the implementation; Faulty wraps a Store to
// inject seeded, replayable faults in tests.
package objstore

import (
	"context"
	"errors"
	"time"
)

// Errors returned by implementations (possibly wrapped).
var (
	// ErrNotFound: no object has the key.
	ErrNotFound = errors.New("objstore: object not found")
	// ErrExists: a write-once Put found an object with the key.
	ErrExists = errors.New("objstore: object already exists")
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Store is an object store.
type Store interface {
	// Put writes data under key. With ifNoneMatch it fails with ErrExists
	// when the key exists (If-None-Match: *), so an object is written once.
	Put(ctx context.Context, key string, data []byte, ifNoneMatch bool) error
	// Get reads length bytes of key from offset off; length < 0 reads to the
	// end. It fails with ErrNotFound when the key does not exist.
	Get(ctx context.Context, key string, off, length int64) ([]byte, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys starting with prefix, in lexical order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
}

// ObjectInfo describes a listed object.
type ObjectInfo struct {
	Key  string
	Size int64
}

// withDeadline gives ctx the default deadline when it has none.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}
