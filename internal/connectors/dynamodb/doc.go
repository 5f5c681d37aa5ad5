// Package dynamodb holds the dynamodb source: a DynamoDB stream (through
// aws-sdk-go-v2's service/dynamodbstreams) to a topic, each change a
// Debezium-style envelope (before = OldImage, after = NewImage). It reads
// every shard, a child only after its parent ended, and checkpoints per
// shard after the receipts (connectors.ReadShards, shared with the kinesis
// source). It registers
// itself with package connectors from init; server imports it.
//
// Files: source.go (the stream's calls and records), envelope.go (attribute values to
// JSON).
package dynamodb
