// Package tiered adds tiered storage to a ledger.Store: the entries of a
// topic before a position are offloaded to an object store as segment
// objects (package object), recorded in a durable per-ledger manifest, and
// deleted locally after a deletion lag; Ledger.Read serves offloaded ranges
// from the object store (ranged reads through a shared block cache), so
// every reader of the ledger sees one log.
//
// Order of an offload (offload.go), each step durable before the next:
//
//  1. PUT the segment object with If-None-Match: * (write-once). Finding
//     the key already there (a crash after an earlier PUT) adopts the
//     object when its bytes are what would be written, else replaces it:
//     an object is only referenced once step 2 is done, so one not in the
//     manifest is an orphan.
//  2. Write the manifest (manifest.go: a file per ledger, replaced
//     atomically and fsynced) listing the object.
//  3. After the deletion lag, Trim the local ledger below the end of the
//     offloaded range.
//
// A crash anywhere leaves the old state (plus at most an orphan object) or
// the new one, never a manifest entry without its object.
package tiered
