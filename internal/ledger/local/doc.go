// Package local is the durable, embedded ledger.Store: the broker's storage
// engine when it runs standalone.
//
// Layout under Options.Dir:
//
//	journal/   one write-ahead log shared by every ledger, which is also where
//	           the entries are read from: segment files 00000000000000000001.log, ...
//	           and at most one zeroed-N.prealloc or recycled-N.prealloc, the
//	           next segment, preallocated
//	index/     a Pebble database for the small mutable state: ledger names and
//	           ids, trim points, cursor states (registry.go)
//
// Write path (journal.go): Append assigns the entry id and queues the entry;
// a committer goroutine writes everything queued with one write call and one
// fdatasync (group commit), then a completer goroutine publishes the group to
// the ledgers' indexes and caches, closes their Changed channels and calls the
// done callbacks in order.
//
// Read path (ledger.go, read.go): recent entries come from the ledger's cache
// (cache.go); older ones are read with ReadAt through the ledger's in-memory
// index (index.go: 8 bytes per entry) and verified against their checksums;
// a record that does not check is never returned: its entry is marked lost
// and reported (damage.go).
//
// Records (record.go) carry a magic, the segment number and a header
// checksum seeded with the journal's random salt, so that recovery
// (recovery.go, scan.go) can skip damaged bytes and resynchronise on the next
// record: a damaged byte costs the record holding it. The last segment is
// truncated where its records end and sealed. Ids are never reused: ledger
// ids start above every id in the journal, entry ids above each ledger's
// persisted high-water mark (cursors.go); records of unknown ledgers are
// quarantined. Verify (verify.go) runs recovery read-only, for mb verify. Retention (retention.go)
// deletes a sealed segment once no ledger has an untrimmed entry in it, or
// recycles it as the spare; without one to recycle, the journal's preparer
// zero-fills a spare in the background (journal.go). A journal write or sync failure
// for lack of space, or free space below Options.MinFreeDisk, refuses appends
// with ledger.ErrDiskFull until space is back, then appends resume without a
// reopen (diskspace.go: the failed segment is sealed, the failed ids are not
// reused). Any other write or sync failure makes every later append fail
// (data already acknowledged stays readable); reopening the store recovers.
//
// Limits: each open ledger has its own cache budget (CacheBytes) and all
// caches share CacheTotalBytes (evict.go); the index of a ledger costs 8 bytes per untrimmed entry;
// Open reads the whole journal.
//
// Lock order (a lock may be taken while holding those to its left):
//
//	Store.opMu → Store.flushMu → ledgerState.mu → journal.mu → segmentSet.mu
//
// Store.mu and Store.dirtyMu are leaves: nothing is locked while holding them. The completer takes one ledgerState.mu at a time
// and calls done callbacks holding no lock; the committer holds no lock while
// writing.
//
// This package depends on ledger, ledger/vfs, Pebble and the Prometheus
// client (metrics.go); it must not import wire, broker or anything that
// knows about Pulsar.
package local
