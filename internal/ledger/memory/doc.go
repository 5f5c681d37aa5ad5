// Package memory is an in-memory ledger.Store for fast broker unit tests. It
// has the semantics of the durable store (ids, asynchronous in-order done
// callbacks, change notification, cursors, trimming, deletion) but keeps
// nothing once the Store is dropped.
//
// It depends on package ledger and the standard library only.
package memory
