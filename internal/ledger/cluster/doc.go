// Package cluster is the ledger.Store of cluster mode: entry data lives in
// an object store (S3) and the index of every topic lives in etcd, so that a
// broker holds nothing but a cache and any broker can take a topic over.
//
// Write path: appends of every open topic are group-committed into one WAL
// object (PUT If-None-Match: *, key <objprefix>/wal/<broker>/<epoch>/<seq>),
// cut by time (WALMaxDelay) and size (WALMaxBytes); then one etcd
// transaction appends every topic's index entry, guarded per topic by its
// fencing token (the create revision of the owner key) and by the topic
// record; the append callbacks (the broker's receipts) run only after that
// transaction succeeded. A writer whose token no longer matches (another
// broker owns the topic) fails its appends with ErrFenced and never commits.
// Up to WALMaxInflight objects are written at once; their transactions run
// in cut order (wal.go).
//
// In the background the owner rewrites each topic's WAL data into segment
// objects (ledger/object format) and swaps them into the index with a
// guarded transaction (rewrite.go); WAL objects nothing points into any
// more are deleted through the reference records their commits wrote
// (gc.go).
//
// Reads go through ledger/object's block cache: a WAL object is a header
// and one block per topic in the segment-object block format, located by the
// index entry. Cursors and trims are checkpointed in etcd in batches, under
// the same guard. docs/cluster.md documents keys, values and versions.
package cluster
