package broker

// Operations of the admin REST API, one file a concept: topic lifecycle
// (admin_topics.go: exists, create, delete, terminate; unload is in
// unload.go), statistics (admin_stats.go), subscriptions and their cursors
// (admin_cursors.go: create, delete, skip, clear backlog, expire, reset) and
// message reads (admin_messages.go: last id, id by time, get, peek). Each
// acts on one topic or partition; fanning out over the partitions of a
// partitioned topic is the caller's job. This file holds what they share.

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/messagebus/messagebus/internal/naming"
)

// Errors of the admin operations, wrapped with the name concerned. The
// admin API maps each to an HTTP status.
var (
	ErrTopicNotFound        = errors.New("topic not found")
	ErrTopicExists          = errors.New("topic already exists")
	ErrTopicBusy            = errors.New("topic has connected producers or consumers")
	ErrSubscriptionNotFound = errors.New("subscription not found")
	ErrSubscriptionExists   = errors.New("subscription already exists")
	ErrSubscriptionBusy     = errors.New("subscription has connected consumers")
	ErrMessageNotFound      = errors.New("message not found")
	// ErrNotAllowed refuses operations that need storage on non-persistent topics.
	ErrNotAllowed = errors.New("operation not allowed")
)

// MessageID is the position of a stored entry. BatchIndex is -1 unless it
// names a message inside a batch; Partition is -1 for a non-partitioned topic.
type MessageID struct {
	LedgerID   int64
	EntryID    int64
	Partition  int
	BatchIndex int32
}

// LatestLedgerID and EarliestLedgerID are the ledger ids of Pulsar's special
// message ids Latest (entry MaxInt64) and Earliest (entry -1).
const (
	LatestLedgerID   = math.MaxInt64
	EarliestLedgerID = -1
)

// existingTopic loads a topic that exists; ErrTopicNotFound otherwise. A
// delete between the check and the load recreates the topic empty, as a
// client's lookup would.
func (b *Broker) existingTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	ok, err := b.TopicExists(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	return b.getTopic(ctx, name)
}

// persistentTopic is existingTopic restricted to persistent topics.
func (b *Broker) persistentTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	if !name.IsPersistent() {
		return nil, fmt.Errorf("%w on non-persistent topic %s", ErrNotAllowed, name)
	}
	return b.existingTopic(ctx, name)
}
