// Package pebbledb opens the broker's Pebble databases (the metadata store,
// the ledger index and the delayed-delivery index) so that they fail closed:
// damage found at open is reported as one DamagedError naming the store, the
// file and what to do, never dropped silently and never a panic trace.
//
// Pebble v2 alone does not do this. It replays the last WAL leniently (a bad
// chunk that no later WAL-sync chunk proves was synced reads as a torn tail,
// and with the default format no chunk carries a synced offset) and stops
// reading its MANIFEST at the first invalid record, both without an error.
// Before Pebble opens a store this package reads the current MANIFEST and the
// newest WAL itself (check.go): a bad chunk followed by further valid chunks
// of the same file is damage; a bad or missing tail is damage after a clean
// close (the MB-CLOSED marker, written by DB.Close, records what the files
// were), and a torn write to accept after a crash.
//
// DB.Checkpoint keeps copies (never hard links, which would share damaged
// blocks) of a store under a checkpoint root; restoring one is the caller's
// business (server.RestoreCheckpoint).
//
// This package depends only on Pebble; it knows nothing of what the stores
// hold.
package pebbledb
