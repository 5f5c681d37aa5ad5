package broker

// Subscriptions and their cursors for the admin API: listing, creating at
// a position, deleting, and moving a cursor (skip, clear backlog, expire,
// reset to an id or a time).

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
)

// Subscriptions lists a topic's subscriptions, sorted.
func (b *Broker) Subscriptions(ctx context.Context, name naming.Topic) ([]string, error) {
	t, err := b.existingTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range t.subscriptions() {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out, nil
}

// subscription returns a subscription of a persistent topic.
func (b *Broker) subscription(ctx context.Context, name naming.Topic, sub string) (*Subscription, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	s := t.subs[sub]
	t.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %s on %s", ErrSubscriptionNotFound, sub, name)
	}
	return s, nil
}

// positionOf maps a message id to the first entry to deliver from it: as a
// seek does, ids of older ledgers (and Earliest) mean the first entry, of
// newer ones (and Latest) the end. exclusive starts after the entry itself.
func positionOf(t *Topic, id MessageID, exclusive bool) int64 {
	var next int64
	switch {
	case id.LedgerID < t.ledgerID || id.LedgerID < 0:
		return t.ledger.FirstEntryID()
	case id.LedgerID > t.ledgerID || id.EntryID == math.MaxInt64:
		return t.ledger.LastEntryID() + 1
	default:
		next = max(id.EntryID, t.ledger.FirstEntryID())
	}
	if exclusive && next == id.EntryID {
		next++
	}
	return min(next, t.ledger.LastEntryID()+1)
}

// CreateSubscription creates a durable subscription whose first message is
// the one at id (Latest: the next one published). A missing topic is
// created, as a consumer would, unless the namespace forbids auto topic
// creation (ErrTopicNotFound). ErrSubscriptionExists when it exists.
func (b *Broker) CreateSubscription(ctx context.Context, name naming.Topic, sub string, id MessageID) error {
	if !name.IsPersistent() {
		return fmt.Errorf("%w on non-persistent topic %s", ErrNotAllowed, name)
	}
	// Creating a subscription creates its topic only where topics are
	// created implicitly, as in Pulsar.
	if ok, err := b.mayUse(ctx, name); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, autoCreateRefusal(name))
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return err
	}
	if _, created, err := createSubscription(t, sub, id); err != nil {
		return err
	} else if !created {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionExists, sub, name)
	}
	return nil
}

// createSubscription returns t's durable subscription sub, creating it at
// id (its cursor persisted) when t has none of that name.
func createSubscription(t *Topic, sub string, id MessageID) (s *Subscription, created bool, err error) {
	s, err = t.getOrCreateSubscription(sub, 0, func() *Subscription {
		created = true
		return newSubscription(t, sub, true, ledger.NewCursorState(positionOf(t, id, false)-1))
	})
	if err != nil || !created {
		return s, created, err
	}
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	s.saveCursor()
	return s, true, nil
}

// DeleteSubscription deletes a subscription and its cursor. Without force it
// refuses (ErrSubscriptionBusy) while consumers are connected; with force
// they are closed (a client that subscribes again creates it anew).
func (b *Broker) DeleteSubscription(ctx context.Context, name naming.Topic, sub string, force bool) error {
	t, err := b.existingTopic(ctx, name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	s := t.subs[sub]
	t.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionNotFound, sub, name)
	}
	s.mu.Lock()
	busy := s.disp != nil && len(s.disp.consumers()) > 0
	s.mu.Unlock()
	if busy && !force {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionBusy, sub, name)
	}
	// Removed (stopped, its cursor and delayed index deleted) first, so no
	// consumer can attach any more; then the ones attached are detached and told.
	t.removeSubscription(s)
	s.mu.Lock()
	var consumers []*Consumer
	if s.disp != nil {
		consumers = append(consumers, s.disp.consumers()...)
		for _, c := range consumers {
			s.disp.remove(c)
		}
	}
	s.mu.Unlock()
	b.metrics.consumers.Sub(float64(len(consumers)))
	for _, c := range consumers {
		c.closeByBroker()
	}
	return nil
}

// SkipMessages acknowledges the next n unacknowledged entries of a subscription.
func (b *Broker) SkipMessages(ctx context.Context, name naming.Topic, sub string, n int64) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	l := s.topic.ledger
	first, last := l.FirstEntryID(), l.LastEntryID()
	s.mu.Lock()
	id := s.cursor.NextUnacked(max(s.cursor.MarkDelete+1, first))
	for ; n > 0 && id <= last; n-- {
		s.cursor.Ack(id)
		s.forget(id)
		s.removeReplay(id)
		id = s.cursor.NextUnacked(id + 1)
	}
	s.dirty = true
	s.mu.Unlock()
	s.signal()
	return nil
}

// ClearBacklog acknowledges every entry stored so far.
func (b *Broker) ClearBacklog(ctx context.Context, name naming.Topic, sub string) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	s.ackBefore(s.topic.ledger.LastEntryID() + 1)
	s.signal()
	return nil
}

// ExpireMessages acknowledges the entries published more than age ago.
func (b *Broker) ExpireMessages(ctx context.Context, name naming.Topic, sub string, age time.Duration) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	first, err := findByPublishTime(ctx, s.topic.ledger, uint64(max(time.Now().Add(-age).UnixMilli(), 0)))
	if err != nil {
		return fmt.Errorf("search %s by publish time: %w", name, err)
	}
	s.ackBefore(first)
	s.signal()
	return nil
}

// ResetCursor moves a subscription so that the message at id is the next
// delivered (the one after it when exclusive). Its consumers are closed and
// subscribe again from there, as after a seek.
func (b *Broker) ResetCursor(ctx context.Context, name naming.Topic, sub string, id MessageID, exclusive bool) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	b.resetTo(s, positionOf(s.topic, id, exclusive))
	return nil
}

// ResetCursorToTime moves a subscription to the first message published at
// or after ts (unix milliseconds).
func (b *Broker) ResetCursorToTime(ctx context.Context, name naming.Topic, sub string, ts int64) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	next, err := findByPublishTime(ctx, s.topic.ledger, uint64(max(ts, 0)))
	if err != nil {
		return fmt.Errorf("search %s by publish time: %w", name, err)
	}
	b.resetTo(s, next)
	return nil
}

func (b *Broker) resetTo(s *Subscription, next int64) {
	for _, c := range s.resetCursor(next) {
		c.closeByBroker()
	}
}
