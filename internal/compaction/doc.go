// Package compaction builds the compacted view of a topic, as Pulsar's
// TwoPhaseCompactor does: for each message key the latest message, without
// tombstones (a keyed message with an empty payload deletes its key) and
// without messages that have no key.
//
// Input is the previous compacted view (its ledger, up to the previous
// horizon) followed by the topic's entries after that horizon up to the new
// one, so data before the previous horizon may already have been trimmed by
// retention. Phase one reads the input and keeps key → position of the
// latest message (memory: one map entry per live key). Phase two reads the
// input again and appends to a new ledger every entry that holds a latest
// message: whole when all its messages survive, otherwise rebatched with
// the removed messages replaced by empty compacted_out placeholders and
// recompressed with the batch's codec, so that the survivors keep their
// batch index (Pulsar's RawBatchConverter.rebatchMessage).
//
// Compacted entries (entry.go) carry the original entry id and a bitset of
// the surviving batch indexes: a reader of the view delivers the original
// message ids and sends the bitset as the MESSAGE's ack_set, which makes
// clients skip the placeholders.
//
// Persisting the result (the horizon and the new ledger's name, then the
// deletion of the previous ledger) is the caller's: the broker keeps them in
// the topic's "__compaction" cursor.
//
// This package depends on ledger and wire; it knows nothing of the broker.
package compaction
