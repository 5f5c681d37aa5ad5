// Package replication is geo-replication's sending side: one Replicator per
// (topic, remote cluster) reads the topic's entries from its ledger in
// order, from the position of its durable cursor pulsar.repl.<remote>, and
// sends them to the same topic on the remote broker that serves it (found
// by LOOKUP from any broker of the remote's URL: lookup.go) with
// replicated_from set to the local cluster and the source position in the
// property __MSG_PROP_REPL_SOURCE_POSITION ("ledgerId:entryId", Pulsar's
// name), by which the remote deduplicates.
//
// The replicator speaks the Pulsar binary protocol through its own small
// producer (link.go) built on package wire, not through the official Go
// client: the client rebuilds every message it sends (new metadata, its own
// batching and compression) and offers no way to set replicated_from or to
// send a stored entry as it is. Sending the entry's own payload bytes keeps
// batches, compression, keys, properties, event times, schema versions and
// chunk fields exactly as the source stored them; only the metadata gains
// replicated_from and the source position.
//
// Guarantees, and how:
//   - In order, never skipped: entries are sent in id order on one
//     connection; the cursor moves only over entries whose receipt came
//     back (or that are not to be sent: replicated_from already set, a
//     replicate_to list without the remote), in order. Markers are sent
//     like entries (replicated subscriptions). On any
//     failure (dial, handshake, SEND_ERROR, a receipt out of order or
//     overdue, a read error) the connection is closed and sending resumes
//     from the entry after the cursor.
//   - Exactly once into the remote: a resend after a reconnect carries the
//     same source position; the remote broker stores each (source cluster,
//     position) once (broker/replicated.go).
//   - No loops: entries that arrived by replication are never sent on.
//
// It is a client of the broker, above it: the broker decides which topics
// replicate where and hands each replicator a broker.ReplicationSource (its
// entries and its cursor) through broker.Config.StartReplicator, which
// package server sets to Manager.Start. Besides the broker's interface it
// uses meta (the remote cluster's record), geo (shared names) and wire
// (the protocol). The broker never imports this package.
package replication
