package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// LocalProducerOptions describe an in-process producer.
type LocalProducerOptions struct {
	Topic string // full name of a persistent topic (or partition)
	// Name is the producer name (deduplication keys on it); empty: one is
	// generated, as for a client.
	Name string
}

// LocalSendFunc gets the outcome of a local send: the entry's position
// (-1, -1 for a duplicate dropped by deduplication) or the error a client
// would get in SEND_ERROR.
type LocalSendFunc func(ledgerID, entryID int64, err error)

// LocalProducer is an in-process producer attached to a topic: its sends
// take the publish path of a client's (termination, size limits,
// deduplication by producer name and sequence id, the ledger, stats).
type LocalProducer struct {
	b *Broker
	p *Producer

	mu      sync.Mutex
	wait    map[uint64]LocalSendFunc // by sequence id
	closed  bool
	appends sync.WaitGroup
}

// ProduceLocal attaches an in-process producer (Shared access mode) to a
// persistent topic this broker serves.
func (b *Broker) ProduceLocal(ctx context.Context, o LocalProducerOptions) (*LocalProducer, error) {
	name, err := naming.ParseTopic(o.Topic)
	if err != nil {
		return nil, err
	}
	if !name.IsPersistent() {
		return nil, fmt.Errorf("in-process producer: %s is not a persistent topic", o.Topic)
	}
	if err := b.checkAutoCreate(ctx, name); err != nil {
		return nil, err
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	limits, err := b.effectivePolicies(ctx, name)
	if err != nil {
		return nil, err
	}
	t.applyRates(limits)
	lp := &LocalProducer{b: b, wait: map[uint64]LocalSendFunc{}}
	lp.p = &Producer{id: 1<<63 | localConsumerIDs.Add(1), name: o.Name, topic: t, local: lp, schemaVersion: schema.NoVersion,
		client: clientInfo{version: "mb-inprocess", metadata: map[string]string{}, connectedSince: time.Now()}}
	if lp.p.name == "" {
		lp.p.name = b.nextProducerName()
	}
	if _, err := t.addProducer(lp.p, pb.ProducerAccessMode_Shared, nil, limits); err != nil {
		return nil, err
	}
	return lp, nil
}

// Name is the producer's name.
func (lp *LocalProducer) Name() string { return lp.p.name }

// LastSequenceID is the last sequence id stored for this producer's name
// (-1: none), as PRODUCER_SUCCESS reports it.
func (lp *LocalProducer) LastSequenceID() int64 { return lp.p.topic.lastSequenceID(lp.p.name) }

// Send publishes hp, an entry as a client sends it ([magic][crc32c]
// [metadata size][MessageMetadata][payload], a batch of numMessages when
// the metadata says so), with sequence ids seq..highest. done is called
// once, possibly before Send returns; sequence ids must be unique among the
// producer's sends in flight.
func (lp *LocalProducer) Send(hp []byte, seq, highest uint64, numMessages int, done LocalSendFunc) {
	b, p := lp.b, lp.p
	meta, payload, err := wire.SplitPayload(hp)
	var md wire.MetadataInfo
	if err == nil {
		err = wire.ParseMetadata(meta, &md)
	}
	if err != nil {
		done(-1, -1, newError(pb.ServerError_NotAllowedError, "malformed message: "+err.Error()))
		return
	}
	size := len(meta) + len(payload)
	if size > b.cfg.MaxMessageSize {
		done(-1, -1, newError(pb.ServerError_NotAllowedError,
			fmt.Sprintf("message of %d bytes exceeds the max message size of %d bytes", size, b.cfg.MaxMessageSize)))
		return
	}
	if lim := p.topic.maxMessageSize.Load(); lim > 0 && int64(size) > lim {
		b.metrics.limits.refused.WithLabelValues("max_message_size").Inc()
		done(-1, -1, newError(pb.ServerError_NotAllowedError,
			fmt.Sprintf("Exceed maximum message size: message of %d bytes, the topic's maxMessageSize is %d bytes", size, lim)))
		return
	}
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		done(-1, -1, ErrLocalClosed)
		return
	}
	if _, dup := lp.wait[seq]; dup {
		lp.mu.Unlock()
		done(-1, -1, fmt.Errorf("in-process producer %s: sequence id %d already in flight", p.name, seq))
		return
	}
	lp.wait[seq] = done
	lp.mu.Unlock()
	if !p.begin() {
		lp.take(seq)
		done(-1, -1, ErrLocalClosed)
		return
	}
	sf := wire.SendFields{ProducerID: p.id, SequenceID: seq, NumMessages: int32(max(numMessages, 1))}
	if highest > seq {
		sf.HighestSequenceID, sf.HasHighestSequenceID = highest, true
	}
	p.topic.publish(p, &sf, hp, nil)
}

func (lp *LocalProducer) take(seq uint64) LocalSendFunc {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	f := lp.wait[seq]
	delete(lp.wait, seq)
	return f
}

func (lp *LocalProducer) sendReceipt(sf *wire.SendFields, ledgerID, entryID int64) {
	if f := lp.take(sf.SequenceID); f != nil {
		f(ledgerID, entryID, nil)
	}
}

func (lp *LocalProducer) sendError(sf wire.SendFields, code pb.ServerError, msg string) {
	if f := lp.take(sf.SequenceID); f != nil {
		f(-1, -1, newError(code, msg))
	}
}

func (lp *LocalProducer) appendStarted() { lp.appends.Add(1) }
func (lp *LocalProducer) appendDone()    { lp.appends.Done() }

// Close detaches the producer after its sends handed to the ledger are
// answered.
func (lp *LocalProducer) Close() {
	lp.p.mu.Lock()
	lp.p.closed = true
	lp.p.mu.Unlock()
	lp.p.inflight.Wait()
	lp.p.topic.removeProducer(lp.p)
	lp.closeByBroker()
}

// closeByBroker fails the sends not answered (there are none once the
// producer's in-flight sends are done).
func (lp *LocalProducer) closeByBroker() {
	lp.mu.Lock()
	lp.closed = true
	wait := lp.wait
	lp.wait = map[uint64]LocalSendFunc{}
	lp.mu.Unlock()
	for _, f := range wait {
		f(-1, -1, ErrLocalClosed)
	}
}

// Closed reports whether the producer was closed (by the broker: the topic
// was unloaded or deleted; its owner makes a new one).
func (lp *LocalProducer) Closed() bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.closed
}
