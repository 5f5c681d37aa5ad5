package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// In-process consumers and producers: a component running inside the
// broker process (the functions worker) attaches to a real subscription
// and publishes through the real publish path without the binary protocol
// and a client library over loopback. A local consumer is a Consumer of
// its subscription like any other (the dispatcher, permits, unacked
// limits, redelivery, cursor, stats and backlog are the same); only its
// MESSAGE frames go to a queue instead of a connection. Access checks are
// the caller's: the broker trusts its own process.

// ErrLocalClosed is returned by a local consumer or producer closed by the
// broker (topic unloaded, deleted, subscription reset) or by its owner.
var ErrLocalClosed = errors.New("in-process consumer or producer closed")

// LocalSubscribeOptions describe an in-process consumer.
type LocalSubscribeOptions struct {
	Topic        string // full name of a persistent topic (or partition)
	Subscription string
	// Type is "Exclusive", "Shared", "Failover" or "Key_Shared".
	Type string
	// Earliest creates a missing subscription at the earliest entry.
	Earliest     bool
	ConsumerName string
	// Notify, when set, gets a (non-blocking) signal when entries arrive
	// or the consumer is closed by the broker; several consumers may share
	// one channel (capacity 1).
	Notify chan struct{}
}

// LocalEntry is one entry delivered to a local consumer, as it is stored
// (metadata and payload, a batch intact).
type LocalEntry struct {
	LedgerID, EntryID int64
	RedeliveryCount   uint32
	// AckSet, when not nil, holds the batch indexes still to deliver
	// (bit set: not acknowledged yet).
	AckSet []int64
	Data   []byte
}

// LocalConsumer is an in-process consumer attached to a subscription.
type LocalConsumer struct {
	b      *Broker
	cs     *Consumer
	notify chan struct{}

	mu     sync.Mutex
	queue  []LocalEntry
	closed bool // by the broker or Close
	// removed is set once the consumer left its subscription.
	removed atomic.Bool
}

var localConsumerIDs atomic.Uint64

// SubscribeLocal attaches an in-process consumer to a durable subscription
// of a persistent topic this broker serves (creating the subscription as a
// client's SUBSCRIBE would). It starts without permits: call Flow.
func (b *Broker) SubscribeLocal(ctx context.Context, o LocalSubscribeOptions) (*LocalConsumer, error) {
	name, err := naming.ParseTopic(o.Topic)
	if err != nil {
		return nil, err
	}
	if !name.IsPersistent() {
		return nil, fmt.Errorf("in-process consumer: %s is not a persistent topic", o.Topic)
	}
	subType, ok := pb.CommandSubscribe_SubType_value[o.Type]
	if !ok {
		return nil, fmt.Errorf("in-process consumer: unknown subscription type %q", o.Type)
	}
	if o.Subscription == "" {
		return nil, newError(pb.ServerError_NotAllowedError, "empty subscription name")
	}
	if err := b.checkAutoCreate(ctx, name); err != nil {
		return nil, err
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	policies, err := b.effectivePolicies(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := t.checkConsumerLimits(policies); err != nil {
		return nil, err
	}
	t.applyRates(policies)
	t.applyDelivery(policies)
	if !b.autoSubscriptionCreation(policies) && !t.hasSubscription(o.Subscription) {
		return nil, newError(pb.ServerError_SubscriptionNotFound, "Subscription does not exist")
	}
	pos := pb.CommandSubscribe_Latest
	if o.Earliest {
		pos = pb.CommandSubscribe_Earliest
	}
	cmd := &pb.CommandSubscribe{InitialPosition: pos.Enum()}
	s, err := t.getOrCreateSubscription(o.Subscription, valueOrInt(policies.MaxSubscriptionsPerTopic, int(b.dyn.maxSubscriptionsPerTopic.Load())), func() *Subscription {
		return newSubscription(t, o.Subscription, true, initialCursor(t, cmd))
	})
	if err != nil {
		return nil, err
	}
	if err := s.checkSubscriptionLimit(policies); err != nil {
		return nil, err
	}
	lc := &LocalConsumer{b: b, notify: o.Notify}
	lc.cs = &Consumer{id: 1<<63 | localConsumerIDs.Add(1), name: o.ConsumerName, sub: s, local: lc,
		client: clientInfo{version: "mb-inprocess", metadata: map[string]string{}, connectedSince: time.Now()}}
	if err := s.attach(lc.cs, pb.CommandSubscribe_SubType(subType)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.setUnackedLimits(lc.cs, policies)
	s.dirty = true
	s.mu.Unlock()
	b.metrics.consumers.Inc()
	s.saveCursor()
	s.confirmJoined(lc.cs)
	return lc, nil
}

// deliver queues an entry; called by the dispatcher with the subscription's
// lock held, so it never blocks (permits bound the queue).
func (lc *LocalConsumer) deliver(e LocalEntry) {
	lc.mu.Lock()
	lc.queue = append(lc.queue, e)
	lc.mu.Unlock()
	lc.signal()
}

func (lc *LocalConsumer) signal() {
	if lc.notify == nil {
		return
	}
	select {
	case lc.notify <- struct{}{}:
	default:
	}
}

// Poll appends the queued entries to buf and returns it; ErrLocalClosed
// once the consumer is closed and its queue drained.
func (lc *LocalConsumer) Poll(buf []LocalEntry) ([]LocalEntry, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.queue) == 0 && lc.closed {
		return buf, ErrLocalClosed
	}
	buf = append(buf, lc.queue...)
	clear(lc.queue)
	lc.queue = lc.queue[:0]
	return buf, nil
}

// Flow grants n more messages, as a client's FLOW.
func (lc *LocalConsumer) Flow(n int) {
	if n <= 0 || lc.isClosed() {
		return
	}
	lc.cs.lastFlow.Store(time.Now().UnixMilli())
	lc.cs.sub.flow(lc.cs, uint32(n))
}

// Ack acknowledges whole entries of the topic's current ledger, as a
// client's individual ACK: the cursor moves as it would for a client.
func (lc *LocalConsumer) Ack(ledgerID int64, entryIDs ...int64) error {
	if len(entryIDs) == 0 {
		return nil
	}
	if lc.removed.Load() {
		return ErrLocalClosed
	}
	mids := make([]*pb.MessageIdData, len(entryIDs))
	for i, id := range entryIDs {
		mids[i] = &pb.MessageIdData{LedgerId: proto.Uint64(uint64(ledgerID)), EntryId: proto.Uint64(uint64(id))}
	}
	return lc.cs.sub.ack(&pb.CommandAck{AckType: pb.CommandAck_Individual.Enum(), MessageId: mids})
}

// Redeliver returns entries delivered to this consumer and not acknowledged
// for redelivery (all of them when none is given), as a client's
// REDELIVER_UNACKNOWLEDGED_MESSAGES.
func (lc *LocalConsumer) Redeliver(ledgerID int64, entryIDs ...int64) {
	if lc.removed.Load() {
		return
	}
	var mids []*pb.MessageIdData
	for _, id := range entryIDs {
		mids = append(mids, &pb.MessageIdData{LedgerId: proto.Uint64(uint64(ledgerID)), EntryId: proto.Uint64(uint64(id))})
	}
	if len(entryIDs) > 0 && len(mids) == 0 {
		return
	}
	lc.cs.sub.redeliver(lc.cs, mids)
}

func (lc *LocalConsumer) isClosed() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.closed
}

// Close detaches the consumer; its unacknowledged entries go to the
// subscription's other consumers (or wait for the next one).
func (lc *LocalConsumer) Close() {
	lc.mu.Lock()
	lc.closed = true
	lc.queue = nil
	lc.mu.Unlock()
	if lc.removed.Swap(true) {
		return
	}
	lc.cs.sub.removeConsumer(lc.cs)
}

// Unsubscribe deletes the subscription; only its sole consumer may
// (ConsumerBusy otherwise), as a client's UNSUBSCRIBE.
func (lc *LocalConsumer) Unsubscribe() error {
	if lc.removed.Load() {
		return ErrLocalClosed
	}
	s := lc.cs.sub
	s.mu.Lock()
	others := len(s.disp.consumers()) > 1
	s.mu.Unlock()
	if others {
		return newError(pb.ServerError_ConsumerBusy, "subscription "+s.name+" has other consumers connected")
	}
	if lc.removed.Swap(true) {
		return ErrLocalClosed
	}
	lc.mu.Lock()
	lc.closed = true
	lc.queue = nil
	lc.mu.Unlock()
	s.mu.Lock()
	s.disp.remove(lc.cs)
	s.mu.Unlock()
	lc.b.metrics.consumers.Dec()
	s.topic.removeSubscription(s)
	return nil
}

// Done reports whether the broker closed the consumer (its owner
// subscribes again).
func (lc *LocalConsumer) Done() bool { return lc.isClosed() }

// closeByBroker is the broker's close (unload, delete, seek): the caller
// detached the consumer and counted it.
func (lc *LocalConsumer) closeByBroker() {
	lc.removed.Store(true)
	lc.mu.Lock()
	lc.closed = true
	lc.queue = nil // redelivered to the next consumer
	lc.mu.Unlock()
	lc.signal()
}

// ServesLocally reports whether topic (a full name) is a persistent topic
// whose bundle this broker serves now (always in standalone): in-process
// consumers and producers attach only to such topics.
func (b *Broker) ServesLocally(topic string) bool {
	name, err := naming.ParseTopic(topic)
	if err != nil || !name.IsPersistent() {
		return false
	}
	return b.checkOwner(name) == nil
}

// LocalPartitions returns topic's number of partitions (0: not
// partitioned), as a client's PARTITIONED_METADATA lookup answers it.
func (b *Broker) LocalPartitions(ctx context.Context, topic string) (int, error) {
	name, err := naming.ParseTopic(topic)
	if err != nil {
		return 0, err
	}
	return b.autoPartitions(ctx, name)
}
