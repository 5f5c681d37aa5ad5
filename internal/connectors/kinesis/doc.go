// Package kinesis holds the kinesis source and sink connectors (Amazon
// Kinesis Data Streams through aws-sdk-go-v2's service/kinesis). It
// registers them with package connectors from init; server imports it.
//
// The source reads every shard of a stream (ListShards, GetShardIterator,
// GetRecords), a child shard only after its parents ended, so the records
// of one partition key keep their order across a split or merge. It
// de-aggregates KPL records (deaggregate.go) and stores, per shard, the
// sequence number of the last record all of whose messages have their
// receipts, and SHARD_END once a closed shard is read to its end: never on
// a timer, so a checkpoint never runs ahead of what the broker stored.
//
// The sink writes messages with PutRecords, partition key = message key.
// A request never holds two messages of one key, and a failed entry is
// retried before any later message of its key is sent, so order per key
// survives partial failures.
//
// Files: settings.go, source.go, deaggregate.go, sink.go (and
// connectors.ReadShards: the shard loop shared with DynamoDB Streams).
package kinesis
