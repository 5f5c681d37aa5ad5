package broker

// Topic lifecycle for the admin API: whether a topic exists, creating,
// deleting and terminating it (and refusing producers and sends on a
// terminated one). Unloading is in unload.go.

import (
	"context"
	"errors"
	"fmt"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// terminatedCursor marks a terminated topic. Its mark-delete position is the
// last entry, so it never holds data back; its presence survives restarts.
const terminatedCursor = internalCursorPrefix + "terminated"

// checkTerminated refuses producers on a terminated topic.
func (t *Topic) checkTerminated() error {
	if t.terminated.Load() {
		return newError(pb.ServerError_TopicTerminatedError, "topic "+t.fullName+" was terminated")
	}
	return nil
}

// refuseTerminated answers a send on a terminated topic with SEND_ERROR and
// reports whether it did. The caller did p.begin().
func (t *Topic) refuseTerminated(p *Producer, sf *wire.SendFields) bool {
	if !t.terminated.Load() {
		return false
	}
	p.replies().sendError(*sf, pb.ServerError_TopicTerminatedError, "topic "+t.fullName+" was terminated")
	p.inflight.Done()
	return true
}

// TopicExists reports whether a topic is loaded, stored, or a partition of
// an existing partitioned topic (partitions exist from their creation, as in
// Pulsar, even before their ledger does).
func (b *Broker) TopicExists(ctx context.Context, name naming.Topic) (bool, error) {
	b.mu.Lock()
	_, loaded := b.topics[name.String()]
	b.mu.Unlock()
	if loaded {
		return true, nil
	}
	if name.IsPersistent() {
		stored, err := b.store.Topics(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range stored {
			if s == name.String() {
				return true, nil
			}
		}
	}
	if i := name.PartitionIndex(); i >= 0 {
		n, err := b.meta.PartitionedTopic(ctx, name.Partitioned())
		if err != nil {
			return false, err
		}
		return i < n, nil
	}
	return false, nil
}

// CreateTopic creates a non-partitioned topic; ErrTopicExists when it exists.
func (b *Broker) CreateTopic(ctx context.Context, name naming.Topic) error {
	ok, err := b.TopicExists(ctx, name)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	_, err = b.getTopic(ctx, name)
	return err
}

// hasClients reports whether producers or consumers are attached.
func (t *Topic) hasClients() bool {
	t.mu.Lock()
	n := len(t.producers) + len(t.waiting)
	t.mu.Unlock()
	for _, s := range t.subscriptions() {
		s.mu.Lock()
		if s.disp != nil {
			n += len(s.disp.consumers())
		}
		s.mu.Unlock()
	}
	return n > 0
}

// HasClients reports whether a loaded topic has producers or consumers; a
// topic that is not loaded has none.
func (b *Broker) HasClients(name naming.Topic) bool {
	b.mu.Lock()
	t := b.topics[name.String()]
	b.mu.Unlock()
	return t != nil && t.hasClients()
}

// DeleteTopic deletes a topic and its data. Without force it refuses
// (ErrTopicBusy) while producers or consumers are connected; with force they
// are closed first (their clients reconnect and, topics being created on
// use, find a new empty topic).
func (b *Broker) DeleteTopic(ctx context.Context, name naming.Topic, force bool) error {
	full := name.String()
	release := b.fence(full) // so that no client reloads the topic before its ledger is gone
	defer release()
	b.mu.Lock()
	t := b.topics[full]
	b.mu.Unlock()
	if t != nil {
		if !force && t.hasClients() {
			return fmt.Errorf("%w: %s", ErrTopicBusy, name)
		}
		subs := t.subscriptions()
		if err := b.unloadFenced(full); err != nil {
			return fmt.Errorf("close %s: %w", name, err)
		}
		for _, s := range subs {
			s.mu.Lock()
			if s.delays != nil {
				if err := s.delays.drop(); err != nil {
					b.log.Error("drop delayed-delivery index", "topic", full, "subscription", s.name, "err", err)
				}
			}
			s.mu.Unlock()
		}
	}
	if !name.IsPersistent() {
		if t == nil {
			return fmt.Errorf("%w: %s", ErrTopicNotFound, name)
		}
		return nil
	}
	err := b.store.Delete(ctx, full)
	if err == nil || errors.Is(err, ledger.ErrNotFound) {
		b.deleteCompactedLedgers(ctx, full)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		if t != nil {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	return err
}

// TerminateTopic seals a topic: its producers are closed and new ones, and
// any further send, are refused with TopicTerminatedError. It returns the
// id of the last entry. Terminating a terminated topic returns it again.
func (b *Broker) TerminateTopic(ctx context.Context, name naming.Topic) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	t.mu.Lock()
	already := t.terminated.Swap(true)
	producers := make([]*Producer, 0, len(t.producers)+len(t.waiting))
	for _, p := range t.producers {
		producers = append(producers, p)
	}
	attached := len(producers)
	producers = append(producers, t.waiting...)
	t.producers = map[string]*Producer{}
	t.waiting = nil
	t.exclusive = nil
	t.mu.Unlock()
	b.metrics.producers.Sub(float64(attached))
	// closeByBroker waits for each producer's sends already handed to the
	// ledger, so the last entry read below is the last one ever.
	for _, p := range producers {
		p.closeByBroker()
	}
	last := t.ledger.LastEntryID()
	if !already {
		if err := t.ledger.SaveCursor(terminatedCursor, ledger.NewCursorState(last)); err != nil {
			return MessageID{}, fmt.Errorf("persist termination of %s: %w", name, err)
		}
	}
	return MessageID{LedgerID: t.ledgerID, EntryID: last, Partition: name.PartitionIndex(), BatchIndex: -1}, nil
}
