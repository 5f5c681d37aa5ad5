package broker

import (
	"context"
	"math"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Consumers and subscriptions.
//
//	SUBSCRIBE (4): topic, subscription, sub_type, consumer_id, request_id,
//	  consumer_name, priority_level, durable (false: a reader's
//	  non-durable subscription), start_message_id (readers),
//	  initial_position, read_compacted, schema, key_shared_meta,
//	  subscription_properties (kept on a new durable subscription), metadata.
//	  Answered SUCCESS; errors ConsumerBusy (exclusive subscription taken, id
//	  in use, consumer limits), ConsumerAssignError (Key_Shared),
//	  NotAllowedError, AuthorizationError, IncompatibleSchema,
//	  TopicNotFound (auto-creation off),
//	  ServiceNotReady (a subscribe still running, metadata unavailable,
//	  timeout). A retried SUBSCRIBE that succeeded is answered again.
//	  replicate_subscription_state marks a durable subscription replicated
//	  (replicated_subs.go). Ignored: force_topic_creation (the
//	  namespace policy decides), start_message_rollback_duration_sec.
//	CLOSE_CONSUMER (16): SUCCESS, also for an unknown consumer.
//	UNSUBSCRIBE (12): SUCCESS; ConsumerBusy while other consumers are
//	  attached, ConsumerNotFound.

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
	c.mu.Lock()
	_, creating := c.creatingConsumers[cmd.GetConsumerId()]
	existing := c.consumers[cmd.GetConsumerId()]
	if !creating && existing == nil {
		c.creatingConsumers[cmd.GetConsumerId()] = true
	}
	c.mu.Unlock()
	if creating {
		// As Pulsar: the client retried before the first attempt ended.
		fail(newError(pb.ServerError_ServiceNotReady, "consumer is being created"))
		return
	}
	if existing != nil {
		if existing.sub.topic.fullName == name.String() && existing.sub.name == cmd.GetSubscription() {
			c.writeCommand(successCommand(reqID)) // a retried subscribe that succeeded
		} else {
			fail(newError(pb.ServerError_ConsumerBusy, "consumer id already in use on this connection"))
		}
		return
	}
	c.goRequest(func(ctx context.Context) {
		cs, err := c.createConsumer(ctx, name, cmd)
		c.mu.Lock()
		live := c.creatingConsumers[cmd.GetConsumerId()]
		delete(c.creatingConsumers, cmd.GetConsumerId())
		if err == nil && live {
			c.consumers[cs.id] = cs
		}
		c.mu.Unlock()
		switch {
		case err != nil:
			c.countTimeout(ctx, "subscribe", err)
			fail(requestError(ctx, err))
		case !live:
			// CLOSE_CONSUMER came while it was being created.
			cs.sub.removeConsumer(cs)
		default:
			c.writeCommand(successCommand(reqID))
			cs.sub.confirmJoined(cs)
		}
	})
}

// createConsumer authorizes, loads the topic and attaches the consumer to
// its subscription.
func (c *conn) createConsumer(ctx context.Context, name naming.Topic, cmd *pb.CommandSubscribe) (*Consumer, error) {
	if cmd.GetReadCompacted() {
		if err := checkReadCompacted(name, cmd.GetSubType()); err != nil {
			return nil, err
		}
	}
	if err := c.authorizeConsume(ctx, name, cmd.GetSubscription()); err != nil {
		return nil, err
	}
	if err := c.b.checkAutoCreate(ctx, name); err != nil {
		return nil, err
	}
	t, err := c.b.getTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	policies, err := c.b.effectivePolicies(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := t.checkConsumerLimits(policies); err != nil {
		return nil, err
	}
	t.applyRates(policies)
	t.applyDelivery(policies)
	if err := t.checkSubscribeRate(c, cmd.GetConsumerName()); err != nil {
		return nil, err
	}
	if err := c.consumerSchema(ctx, t, name, cmd.GetSchema()); err != nil {
		return nil, err
	}
	durable := cmd.Durable == nil || cmd.GetDurable()
	if durable && t.ledger != nil && !c.b.autoSubscriptionCreation(policies) && !t.hasSubscription(cmd.GetSubscription()) {
		// Pulsar's SubscriptionNotFoundException, word for word.
		return nil, newError(pb.ServerError_SubscriptionNotFound, "Subscription does not exist")
	}
	s, err := t.getOrCreateSubscription(cmd.GetSubscription(), valueOrInt(policies.MaxSubscriptionsPerTopic, int(c.b.dyn.maxSubscriptionsPerTopic.Load())), func() *Subscription {
		return newSubscription(t, cmd.GetSubscription(), durable && t.ledger != nil, initialCursor(t, cmd))
	})
	if err != nil {
		return nil, err
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
	if err := s.checkSubscriptionLimit(policies); err != nil {
		return nil, err
	}
	if cmd.GetReplicateSubscriptionState() {
		t.markReplicated(s)
	}
	s.mu.Lock()
	s.readCompacted = cmd.GetReadCompacted()
	s.inView, s.viewEnd = s.readCompacted, -1
	s.mu.Unlock()
	cs := &Consumer{id: cmd.GetConsumerId(), name: cmd.GetConsumerName(), sub: s, cn: c,
		priority: cmd.GetPriorityLevel(), keyShared: cmd.GetKeySharedMeta(), client: newClientInfo(c, cmd.GetMetadata())}
	if err := s.attach(cs, cmd.GetSubType()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.setUnackedLimits(cs, policies)
	s.mu.Unlock()
	c.b.metrics.consumers.Inc()
	if s.durable {
		// Make a new subscription durable at once: it exists from now on even
		// if the broker is killed before the next periodic save.
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.saveCursor()
	}
	return cs, nil
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
	if _, creating := c.creatingConsumers[cmd.GetConsumerId()]; creating {
		// The creating request undoes itself when it ends.
		c.creatingConsumers[cmd.GetConsumerId()] = false
		c.mu.Unlock()
		c.writeCommand(successCommand(cmd.GetRequestId()))
		return
	}
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
