// Package connectors runs Pulsar IO-style sources and sinks inside a
// MessageBus node, managed through /admin/v3/sources and /admin/v3/sinks.
//
// It follows the functions worker (package functions): configurations and
// checkpoints live in the metadata store (meta.Store), instances are
// clients of the node's own broker over loopback with the official Go
// client (supervise.NewClient), and each instance runs sessions under
// supervise.Loop, which restarts a failed one with backoff.
//
// Delivery is at-least-once. A source hands records to Send and learns of
// each receipt through a callback; it stores a checkpoint only for a
// position all of whose records have receipts (Committer tracks that). A
// sink is given messages and acknowledges each only after its external
// write succeeded; a failed session leaves the rest unacknowledged and
// they come back to the next one.
//
// Files: config.go (Config, Pulsar's SourceConfig/SinkConfig JSON),
// secrets.go (file:, env: and vault: references), builtin.go (the connector
// types), api.go (what a connector implements and is given), committer.go,
// store.go (records and checkpoints), manager.go (the admin API's calls),
// instance.go (sessions), status.go, metrics.go, settings.go (checks of
// settings keys), shards.go (ReadyShards) and shardreader.go (ReadShards:
// the shard loop of the stream sources), and one file per built-in connector (datagen.go,
// filesink.go, ...). Larger connectors are packages of their own that
// call Register from init (kinesis, dynamodb, lake; server imports them).
package connectors
