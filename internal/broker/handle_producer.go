package broker

import (
	"context"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Producers.
//
//	PRODUCER (5): topic, producer_id, request_id, producer_name (generated
//	  when empty), metadata, schema (handle_schema.go), producer_access_mode
//	  and topic_epoch (producer_access.go), initial_subscription_name (a
//	  durable subscription created at the earliest entry, as for dead-letter
//	  topics). Answered PRODUCER_SUCCESS with producer_name,
//	  last_sequence_id (deduplication), schema_version and topic_epoch;
//	  producer_ready=false first for a queued WaitForExclusive producer, then
//	  a second, ready answer. Errors: ProducerBusy (a Shared producer next
//	  to an exclusive one, limits), ProducerFenced (an Exclusive one next to
//	  any other, an old epoch), TopicTerminatedError, AuthorizationError,
//	  IncompatibleSchema, ProducerBlockedQuotaExceeded*, TopicNotFound
//	  (auto-creation off), ServiceNotReady (a create still running, metadata
//	  unavailable, timeout). A retried PRODUCER that succeeded is answered
//	  again. Ignored: encrypted, epoch, user_provided_producer_name,
//	  txn_enabled.
//	CLOSE_PRODUCER (15): SUCCESS, also for an unknown producer; the broker
//	  sends its own CLOSE_PRODUCER when it unloads or deletes the topic.

func (c *conn) handleProducer(cmd *pb.CommandProducer) {
	reqID := cmd.GetRequestId()
	fail := func(err error) {
		c.writeCommand(errorCommand(reqID, serverError(err), err.Error()))
	}
	name, err := naming.ParseTopic(cmd.GetTopic())
	if err != nil {
		fail(err)
		return
	}
	// Only this (the read loop's) goroutine adds to creatingProducers, so
	// what is read here holds until the id is marked below.
	c.mu.Lock()
	_, creating := c.creatingProducers[cmd.GetProducerId()]
	existing := c.producers[cmd.GetProducerId()]
	c.mu.Unlock()
	if creating {
		// As Pulsar: the client retried before the first attempt ended.
		fail(newError(pb.ServerError_ServiceNotReady, "producer is being created"))
		return
	}
	if existing != nil && !existing.isClosed() {
		if existing.topic.fullName != name.String() {
			fail(newError(pb.ServerError_ProducerBusy, "producer id already in use on this connection"))
			return
		}
		// The client retried a create that succeeded: answer it again.
		c.writeProducerSuccess(reqID, existing, true)
		return
	}
	c.mu.Lock()
	c.creatingProducers[cmd.GetProducerId()] = true
	c.mu.Unlock()
	c.goRequest(func(ctx context.Context) {
		p, ready, err := c.createProducer(ctx, name, cmd)
		c.mu.Lock()
		live := c.creatingProducers[cmd.GetProducerId()]
		delete(c.creatingProducers, cmd.GetProducerId())
		if err == nil && !live {
			// CLOSE_PRODUCER came while it was being created.
			if c.producers[p.id] == p {
				delete(c.producers, p.id)
			}
			c.mu.Unlock()
			p.topic.removeProducer(p)
			return
		}
		c.mu.Unlock()
		if err != nil {
			c.countTimeout(ctx, "producer", err)
			fail(requestError(ctx, err))
			return
		}
		c.writeProducerSuccess(reqID, p, ready)
	})
}

// createProducer authorizes, loads the topic and attaches the producer.
func (c *conn) createProducer(ctx context.Context, name naming.Topic, cmd *pb.CommandProducer) (*Producer, bool, error) {
	if err := c.authorizeProduce(ctx, name); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	if existing := c.producers[cmd.GetProducerId()]; existing != nil {
		// Re-created after a broker-initiated close: the old one is done.
		delete(c.producers, existing.id)
	}
	c.mu.Unlock()
	if err := c.b.checkAutoCreate(ctx, name); err != nil {
		return nil, false, err
	}
	t, err := c.b.getTopic(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if err := t.createInitialSubscription(cmd.GetInitialSubscriptionName()); err != nil {
		return nil, false, err
	}
	schemaVersion, err := c.producerSchema(ctx, name, cmd.GetSchema())
	if err != nil {
		return nil, false, err
	}
	p := &Producer{id: cmd.GetProducerId(), name: cmd.GetProducerName(), topic: t, cn: c, requestID: cmd.GetRequestId(),
		schemaVersion: schemaVersion, client: newClientInfo(c, cmd.GetMetadata())}
	if p.name == "" {
		p.name = c.b.nextProducerName()
	}
	limits, err := c.b.effectivePolicies(ctx, t.name)
	if err != nil {
		return nil, false, err
	}
	t.applyRates(limits)
	// Registered on the connection first, so that a promotion of a waiting
	// producer finds it and a disconnect releases it.
	c.mu.Lock()
	c.producers[p.id] = p
	c.mu.Unlock()
	ready, err := t.addProducer(p, cmd.GetProducerAccessMode(), cmd.TopicEpoch, limits)
	if err != nil {
		c.mu.Lock()
		delete(c.producers, p.id)
		c.mu.Unlock()
		return nil, false, err
	}
	return p, ready, nil
}

// writeProducerSuccess answers PRODUCER. ready=false tells a
// WaitForExclusive client to keep waiting for a second, ready answer.
func (c *conn) writeProducerSuccess(reqID uint64, p *Producer, ready bool) {
	ps := &pb.CommandProducerSuccess{
		RequestId:      proto.Uint64(reqID),
		ProducerName:   proto.String(p.name),
		LastSequenceId: proto.Int64(p.topic.lastSequenceID(p.name)),
		ProducerReady:  proto.Bool(ready),
	}
	if ready && p.epoch > 0 {
		ps.TopicEpoch = proto.Uint64(p.epoch)
	}
	if p.schemaVersion != schema.NoVersion {
		ps.SchemaVersion = schema.EncodeVersion(p.schemaVersion)
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: ps})
}

func (c *conn) handleCloseProducer(cmd *pb.CommandCloseProducer) {
	c.mu.Lock()
	if _, creating := c.creatingProducers[cmd.GetProducerId()]; creating {
		// The creating request undoes itself when it ends.
		c.creatingProducers[cmd.GetProducerId()] = false
		c.mu.Unlock()
		c.writeCommand(successCommand(cmd.GetRequestId()))
		return
	}
	p := c.producers[cmd.GetProducerId()]
	delete(c.producers, cmd.GetProducerId())
	c.mu.Unlock()
	if p != nil {
		p.topic.removeProducer(p)
	}
	c.writeCommand(successCommand(cmd.GetRequestId()))
}
