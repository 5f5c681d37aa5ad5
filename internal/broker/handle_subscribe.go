package broker

import (
	"context"
	"math"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func (c *conn) handleSubscribe(cmd *pb.CommandSubscribe) {
	reqID := cmd.GetRequestId()
	fail := func(err error) {
		c.writeCommand(errorCommand(reqID, serverError(err), err.Error()))
	}
	name, err := naming.ParseTopic(cmd.GetTopic())
	if err != nil {
		fail(err)
		return
	}
	if cmd.GetSubscription() == "" {
		fail(newError(pb.ServerError_NotAllowedError, "empty subscription name"))
		return
	}
	if err := c.authorizeConsume(name, cmd.GetSubscription()); err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	existing := c.consumers[cmd.GetConsumerId()]
	c.mu.Unlock()
	if existing != nil {
		if existing.sub.topic.fullName == name.String() && existing.sub.name == cmd.GetSubscription() {
			c.writeCommand(successCommand(reqID)) // a retried subscribe that succeeded
		} else {
			fail(newError(pb.ServerError_ConsumerBusy, "consumer id already in use on this connection"))
		}
		return
	}
	if cmd.GetReadCompacted() {
		if err := checkReadCompacted(name, cmd.GetSubType()); err != nil {
			fail(err)
			return
		}
	}
	if err := c.b.checkAutoCreate(context.Background(), name); err != nil {
		fail(err)
		return
	}
	t, err := c.b.getTopic(context.Background(), name)
	if err != nil {
		fail(err)
		return
	}
	if err := t.checkConsumerLimits(); err != nil {
		fail(err)
		return
	}
	durable := cmd.Durable == nil || cmd.GetDurable()
	s, err := t.getOrCreateSubscription(cmd.GetSubscription(), func() *Subscription {
		return newSubscription(t, cmd.GetSubscription(), durable && t.ledger != nil, initialCursor(t, cmd))
	})
	if err != nil {
		fail(err)
		return
	}
	if props := cmd.GetSubscriptionProperties(); len(props) > 0 && s.durable {
		s.mu.Lock()
		if len(s.cursor.Properties) == 0 {
			s.cursor.Properties = map[string]string{}
			for _, kv := range props {
				s.cursor.Properties[kv.GetKey()] = kv.GetValue()
			}
			s.dirty = true
		}
		s.mu.Unlock()
	}
	if err := s.checkSubscriptionLimit(); err != nil {
		fail(err)
		return
	}
	s.mu.Lock()
	s.readCompacted = cmd.GetReadCompacted()
	s.inView, s.viewEnd = s.readCompacted, -1
	s.mu.Unlock()
	cs := &Consumer{id: cmd.GetConsumerId(), name: cmd.GetConsumerName(), sub: s, cn: c,
		priority: cmd.GetPriorityLevel(), keyShared: cmd.GetKeySharedMeta()}
	if err := s.attach(cs, cmd.GetSubType()); err != nil {
		fail(err)
		return
	}
	c.b.metrics.consumers.Inc()
	if s.durable {
		// Make a new subscription durable at once: it exists from now on even
		// if the broker is killed before the next periodic save.
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.saveCursor()
	}
	c.mu.Lock()
	c.consumers[cs.id] = cs
	c.mu.Unlock()
	c.writeCommand(successCommand(reqID))
}

// initialCursor is the cursor of a new subscription: at the end (latest) or
// before the first entry (earliest), or, for readers, at start_message_id.
func initialCursor(t *Topic, cmd *pb.CommandSubscribe) *ledger.CursorState {
	if t.ledger == nil {
		return ledger.NewCursorState(-1)
	}
	first, last := t.ledger.FirstEntryID(), t.ledger.LastEntryID()
	earliest := ledger.NewCursorState(t.earliestEntry(cmd.GetReadCompacted()) - 1)
	latest := ledger.NewCursorState(last)
	start := cmd.GetStartMessageId()
	if start == nil || cmd.Durable == nil || cmd.GetDurable() {
		if cmd.GetInitialPosition() == pb.CommandSubscribe_Earliest {
			return earliest
		}
		return latest
	}
	lid, eid := int64(start.GetLedgerId()), int64(start.GetEntryId())
	switch {
	case lid == math.MaxInt64 || lid > t.ledgerID:
		return latest
	case lid < 0 || lid < t.ledgerID || eid < first:
		return earliest
	}
	// Start at the entry itself, as Pulsar does: the client drops what comes
	// before its start id (and the start message itself unless inclusive).
	return ledger.NewCursorState(eid - 1)
}

func (c *conn) handleCloseConsumer(cmd *pb.CommandCloseConsumer) {
	c.mu.Lock()
	cs := c.consumers[cmd.GetConsumerId()]
	delete(c.consumers, cmd.GetConsumerId())
	c.mu.Unlock()
	if cs != nil {
		cs.sub.removeConsumer(cs)
	}
	c.writeCommand(successCommand(cmd.GetRequestId()))
}

// handleUnsubscribe deletes the subscription; only its sole consumer may.
func (c *conn) handleUnsubscribe(cmd *pb.CommandUnsubscribe) {
	c.mu.Lock()
	cs := c.consumers[cmd.GetConsumerId()]
	c.mu.Unlock()
	if cs == nil {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_ConsumerNotFound, "consumer not found"))
		return
	}
	s := cs.sub
	s.mu.Lock()
	others := len(s.disp.consumers()) > 1
	s.mu.Unlock()
	if others {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_ConsumerBusy,
			"subscription "+s.name+" has other consumers connected"))
		return
	}
	c.mu.Lock()
	delete(c.consumers, cs.id)
	c.mu.Unlock()
	s.mu.Lock()
	s.disp.remove(cs)
	s.mu.Unlock()
	c.b.metrics.consumers.Dec()
	s.topic.removeSubscription(s)
	c.writeCommand(successCommand(cmd.GetRequestId()))
}
