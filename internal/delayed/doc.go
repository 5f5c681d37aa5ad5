// Package delayed is the durable index of delayed delivery: for each
// subscription, the entries whose deliver_at_time lies in the future, ordered
// by due time. One Store (a Pebble database) holds the indexes of every
// subscription of a broker; an Index is one subscription's handle.
//
// Only the near future is kept in memory (see Index for the bound); the rest
// lives on disk and is loaded a window at a time as time advances, so memory
// does not grow with the number of delayed messages.
//
// Writes are batched and never synced on the caller's path: the index is an
// accelerator, not the source of truth. Delayed entries stay unacknowledged
// in the subscription's cursor, so after a crash the broker reads them again
// from the mark-delete position and adds them again; adds are idempotent.
// What the index returns as due is a fact about the topic's entries (entry
// id and its deliver_at_time), never a decision to deliver: the caller checks
// acknowledgements before dispatching.
//
// This package knows nothing of topics, cursors or the wire protocol; it
// depends only on Pebble.
package delayed
