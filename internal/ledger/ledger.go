package ledger

import (
	"context"
	"errors"
)

// Errors returned by implementations.
var (
	ErrClosed   = errors.New("ledger: closed")
	ErrNotFound = errors.New("ledger: not found")
	ErrTrimmed  = errors.New("ledger: entry trimmed")
)

// Entry is one stored entry. Data is owned by the store and must not be modified.
type Entry struct {
	ID   int64
	Data []byte
}

// Store opens the ledgers of persistent topics.
//
// Calls that may go to remote storage (an object store, a metadata service)
// take a context: an implementation gives up when it ends and returns its
// error (context.Canceled or context.DeadlineExceeded, possibly wrapped).
// The embedded implementations answer from local disk or memory and check
// the context only before starting.
type Store interface {
	// Open opens (creating when missing) the ledger of a topic.
	// Opening an open ledger returns the same instance.
	Open(ctx context.Context, topic string) (Ledger, error)
	// Delete removes a ledger, its entries and cursors. The ledger must be closed
	// or it is closed first.
	Delete(ctx context.Context, topic string) error
	// Topics lists every ledger that exists.
	Topics(ctx context.Context) ([]string, error)
	// Close flushes cursors and closes every ledger.
	Close() error
}

// Ledger is the log of one topic. All methods are safe for concurrent use.
type Ledger interface {
	Name() string
	// ID is the ledger id put in message ids. It is unique in the store and
	// greater than the id of any ledger created before (also after deletion).
	ID() int64

	// Append stores data and calls done once it is durable (fsynced), with the
	// entry id, in append order. Entry ids start at 0 and are consecutive.
	// done is called from a store goroutine; it must not block for long.
	// The store takes ownership of data.
	Append(data []byte, done func(entryID int64, err error))

	// Read returns entries with id >= from, in order, at most maxEntries and
	// (beyond the first) at most maxBytes of data. Only durable entries are
	// returned; an empty result means none is available yet. Reading below
	// FirstEntryID returns ErrTrimmed. Entries not in memory may come from
	// remote storage: ctx bounds the wait.
	Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]Entry, error)
	// FirstEntryID is the first entry not trimmed (LastEntryID+1 when empty).
	FirstEntryID() int64
	// LastEntryID is the id of the last durable entry, -1 when none was ever written.
	LastEntryID() int64
	// Changed returns a channel that is closed when LastEntryID next advances.
	// Take the channel before checking LastEntryID to avoid missing a wake-up.
	Changed() <-chan struct{}

	// Trim allows the deletion of entries with id < before. Deletion is lazy
	// (whole segments); FirstEntryID reflects what can still be read.
	Trim(before int64)
	// Size is the number of bytes of entry data stored (after trimming).
	Size() int64
	// Entries is the number of entries stored (after trimming).
	Entries() int64

	// Cursors returns the persisted state of every cursor, as loaded at open
	// time plus every SaveCursor since.
	Cursors() map[string]*CursorState
	// SaveCursor records the state of a cursor. It is persisted within the
	// store's cursor flush interval (about a second) and on Close; the state is
	// copied (encoded) before SaveCursor returns.
	SaveCursor(name string, state *CursorState) error
	// DeleteCursor forgets a cursor durably.
	DeleteCursor(name string) error

	// Close flushes cursors and releases the ledger; later calls fail with ErrClosed.
	Close() error
}

// DamageReporter is implemented by ledgers whose storage can lose entries to
// damage (a flipped bit on disk): Read skips such entries and never returns
// them.
type DamageReporter interface {
	// LostEntries is the number of entries between FirstEntryID and
	// LastEntryID lost to damaged storage.
	LostEntries() int64
}

// CursorSyncer is implemented by ledgers that can make the cursors saved so
// far durable on demand, for a caller that must not go on (e.g. delete data
// a cursor no longer refers to) before its SaveCursor survives a crash.
type CursorSyncer interface {
	// SyncCursors persists every cursor saved before the call.
	SyncCursors() error
}

// BackgroundAppender is implemented by ledgers whose store can take appends
// of background work (a compaction's output) without a sync of their own:
// they are written with the next group commit of other appends, or after a
// short delay, so that they do not keep the shared journal busy and make
// producers' syncs queue behind theirs. done is called once the entry is
// durable, as for Append. A ledger appended to this way may also be
// appended to normally; entries keep their order.
type BackgroundAppender interface {
	AppendBackground(data []byte, done func(entryID int64, err error))
}

// ReadBuf is the memory a BufferReader's reads reuse.
type ReadBuf struct {
	Entries []Entry
	Data    []byte
}

// BufferReader is implemented by ledgers whose reads can reuse the
// caller's memory: background work reading a whole topic (a compaction)
// would otherwise allocate everything it reads, and the collections that
// triggers are paid for by publishing (stop-the-world pauses, mark
// assists).
type BufferReader interface {
	// ReadInto is Read with the result in buf's memory (grown when too
	// small): the entries and their data are valid until the next ReadInto
	// with the same buf. Data of entries still cached in memory may alias
	// the cache, as with Read; it must not be modified.
	ReadInto(ctx context.Context, from int64, maxEntries, maxBytes int, buf *ReadBuf) ([]Entry, error)
}
