package broker

// Message reads for the admin API: the last message id, the id at a time,
// one message by id, and peeking at a subscription's next ones.

import (
	"context"
	"errors"
	"fmt"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
)

// Message is a stored entry: MessageMetadata and payload as the client sent them.
type Message struct {
	ID   MessageID
	Data []byte
}

// LastMessageID returns the id of a topic's last stored message (entry -1
// when none), with the batch index of the last message of a batch.
func (b *Broker) LastMessageID(ctx context.Context, name naming.Topic) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	id := MessageID{LedgerID: t.ledgerID, EntryID: t.lastMessageEntry(), Partition: name.PartitionIndex(), BatchIndex: -1}
	if id.EntryID >= 0 {
		if es, err := t.ledger.Read(ctx, id.EntryID, 1, 0); err == nil && len(es) == 1 {
			if md, ok := entryMetadata(es[0].Data); ok && md.HasNumMessagesInBatch {
				id.BatchIndex = md.NumMessagesInBatch - 1
			}
		}
	}
	return id, nil
}

// MessageIDByTimestamp returns the first message published at or after ts
// (unix milliseconds); ErrMessageNotFound when every message is older.
func (b *Broker) MessageIDByTimestamp(ctx context.Context, name naming.Topic, ts int64) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	id, err := findByPublishTime(ctx, t.ledger, uint64(max(ts, 0)))
	if err != nil {
		return MessageID{}, fmt.Errorf("search %s by publish time: %w", name, err)
	}
	if id > t.ledger.LastEntryID() {
		return MessageID{}, fmt.Errorf("%w: no message of %s was published at or after %d", ErrMessageNotFound, name, ts)
	}
	return MessageID{LedgerID: t.ledgerID, EntryID: id, Partition: name.PartitionIndex(), BatchIndex: -1}, nil
}

// ReadMessage returns the entry at ledgerID:entryID.
func (b *Broker) ReadMessage(ctx context.Context, name naming.Topic, ledgerID, entryID int64) (Message, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return Message{}, err
	}
	if ledgerID != t.ledgerID {
		return Message{}, fmt.Errorf("%w: %s has no ledger %d", ErrMessageNotFound, name, ledgerID)
	}
	return readEntry(ctx, t, entryID)
}

func readEntry(ctx context.Context, t *Topic, id int64) (Message, error) {
	notFound := fmt.Errorf("%w: entry %d:%d of %s", ErrMessageNotFound, t.ledgerID, id, t.fullName)
	if id < 0 || id > t.ledger.LastEntryID() {
		return Message{}, notFound
	}
	es, err := t.ledger.Read(ctx, id, 1, 0)
	if errors.Is(err, ledger.ErrTrimmed) || err == nil && (len(es) == 0 || es[0].ID != id) {
		return Message{}, notFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("read %d:%d of %s: %w", t.ledgerID, id, t.fullName, err)
	}
	return Message{ID: MessageID{LedgerID: t.ledgerID, EntryID: id, Partition: t.name.PartitionIndex(), BatchIndex: -1},
		Data: es[0].Data}, nil
}

// PeekMessage returns the n-th (from 1) unacknowledged entry of a
// subscription without changing it.
// As in Pulsar, peeking a subscription the topic does not have creates it
// at the earliest position (the topic itself must exist).
func (b *Broker) PeekMessage(ctx context.Context, name naming.Topic, sub string, n int64) (Message, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return Message{}, err
	}
	s, _, err := createSubscription(t, sub, MessageID{LedgerID: EarliestLedgerID, EntryID: -1})
	if err != nil {
		return Message{}, err
	}
	l := s.topic.ledger
	first, last := l.FirstEntryID(), l.LastEntryID()
	n = max(n, 1)
	s.mu.Lock()
	c := s.cursor
	// The next unacknowledged entry that is not a marker (markers are
	// never shown).
	next := func(from int64) int64 {
		id := c.NextUnacked(from)
		for id <= last && t.markers.isMarker(id) {
			id = c.NextUnacked(id + 1)
		}
		return id
	}
	id := next(max(c.MarkDelete+1, first))
	switch {
	case id > last:
	case c.RangeCount() == 0 && !t.markers.any():
		id += min(n-1, last-id+1) // nothing is acked after id: no need to walk
	default:
		for i := int64(1); i < n && id <= last; i++ {
			id = next(id + 1)
		}
	}
	s.mu.Unlock()
	if id > last {
		return Message{}, fmt.Errorf("%w: %s on %s has fewer than %d unacknowledged entries", ErrMessageNotFound, sub, name, n)
	}
	return readEntry(ctx, s.topic, id)
}
