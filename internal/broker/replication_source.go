package broker

import (
	"context"
	"time"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// The broker's side of geo-replication's sending half. The replicator is a
// client of the broker (package replication, wired in by package server):
// the broker decides which topics replicate where (their policies), keeps
// the durable cursor pulsar.repl.<remote> of each, and hands a
// ReplicationSource to Config.StartReplicator; the replicator reads entries
// through it, moves the cursor by Save and reports its state by Stats.
// Without a StartReplicator the broker still accepts replicated sends but
// sends nothing to other clusters.

// ReplicationEntries is the part of a topic's ledger a replicator reads.
type ReplicationEntries interface {
	// Read returns up to maxEntries entries (about maxBytes) from id from.
	Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error)
	FirstEntryID() int64
	LastEntryID() int64
	// Changed is closed at the next append.
	Changed() <-chan struct{}
}

// ReplicationSource is one topic's replication to one remote cluster.
type ReplicationSource struct {
	// Topic is the full topic name, the same on both clusters.
	Topic         string
	LocalCluster  string
	RemoteCluster string
	// LedgerID is the topic's ledger id, the first half of each entry's
	// source position.
	LedgerID int64
	// PartitionedTopic and Partitions are set for a partition of a
	// partitioned topic (Partitions 0: not one).
	PartitionedTopic string
	Partitions       int
	Entries          ReplicationEntries
	// Start is the cursor's mark-delete position: sending starts after it.
	Start int64
	// Save persists the cursor's mark-delete position.
	Save func(markDelete int64)
	// Schema returns the topic's schema of a schema_version found in an
	// entry's metadata, as the protocol carries it, for the replicator to
	// register on the remote.
	Schema func(ctx context.Context, version []byte) (*pb.Schema, error)
	// OnError counts a failed attempt in the broker's metrics.
	OnError func(err error)
}

// Replicator is a running replicator as the broker sees it.
type Replicator interface {
	// Stop ends it; it saves its cursor first.
	Stop()
	// MarkDelete is the last entry replicated (or passed over): retention
	// keeps what comes after it.
	MarkDelete() int64
	// Stats reports its state for topic stats and metrics.
	Stats(now time.Time) geo.Stats
	// UpdateSubscription queues the watermarks of a replicated
	// subscription for the remote (replicated_subs.go).
	UpdateSubscription(sub string, positions map[string]string)
}

// StartReplicatorFunc starts a replicator for src; it must not block.
type StartReplicatorFunc func(src ReplicationSource) Replicator

// replicationSchema reads the schema of version v of t (a partition: its
// partitioned topic's).
func (t *Topic) replicationSchema(ctx context.Context, v []byte) (*pb.Schema, error) {
	n, err := schema.DecodeVersion(v)
	if err != nil {
		return nil, err
	}
	rec, err := t.b.schemas.Version(ctx, t.name, n)
	if err != nil {
		return nil, err
	}
	return recordProto(t.name, rec), nil
}
