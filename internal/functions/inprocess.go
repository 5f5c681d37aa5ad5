package functions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/broker"
)

// The in-process path. When the broker running a WebAssembly instance
// serves all of its input topics, the instance consumes through an
// in-process consumer attached to the function's real subscription and
// publishes to the outputs the broker serves through in-process producers
// (package broker's SubscribeLocal and ProduceLocal): no Pulsar client,
// no protocol encoding, no loopback socket. The subscription, its cursor,
// backlog, stats and redeliveries are the broker's as for a client. Other
// instances (inputs served elsewhere in a cluster, topic patterns,
// dead-letter topics, process functions) take the loopback client path.

// InProcess is what the functions worker needs of the broker it runs in
// (*broker.Broker has it); nil: every instance takes the client path.
type InProcess interface {
	ServesLocally(topic string) bool
	LocalPartitions(ctx context.Context, topic string) (int, error)
	SubscribeLocal(ctx context.Context, o broker.LocalSubscribeOptions) (*broker.LocalConsumer, error)
	ProduceLocal(ctx context.Context, o broker.LocalProducerOptions) (*broker.LocalProducer, error)
}

// inputSource is where an instance's messages come from: the Pulsar
// client's consumer or the in-process consumers.
type inputSource interface {
	// Receive waits for a message.
	Receive(ctx context.Context) (pulsar.Message, error)
	// drain appends messages already received, up to len(buf) == limit.
	drain(buf []pulsar.Message, limit int) []pulsar.Message
	Ack(pulsar.Message) error
	Nack(pulsar.Message)
	Unsubscribe() error
	Close()
}

// clientSource is the loopback path's consumer.
type clientSource struct{ pulsar.Consumer }

func (c clientSource) drain(buf []pulsar.Message, limit int) []pulsar.Message {
	for len(buf) < limit {
		select {
		case cm, ok := <-c.Chan():
			if !ok {
				return buf
			}
			buf = append(buf, cm.Message)
		default:
			return buf
		}
	}
	return buf
}

// inprocessInputs returns the topic partitions an instance reads in
// process, or nil when it must take the client path.
func (r *runner) inprocessInputs(ctx context.Context) []string {
	ip, cfg := r.m.cfg.InProcess, &r.rec.Config
	if ip == nil || r.mod == nil || r.noInProcess.Load() || len(cfg.Inputs) == 0 || cfg.TopicsPattern != "" ||
		(cfg.DeadLetterTopic != "" && cfg.maxRetries() > 0 && cfg.ProcessingGuarantees != EffectivelyOnce) {
		return nil
	}
	var topics []string
	for _, in := range cfg.Inputs {
		n, err := ip.LocalPartitions(ctx, in)
		if err != nil {
			return nil
		}
		if n == 0 {
			topics = append(topics, in)
			continue
		}
		for p := range n {
			topics = append(topics, in+"-partition-"+strconv.Itoa(p))
		}
	}
	for _, t := range topics {
		if !ip.ServesLocally(t) {
			return nil
		}
	}
	return topics
}

// localSubType is the broker's name of a function's subscription type.
func localSubType(t string) string {
	switch t {
	case SubFailover:
		return "Failover"
	case SubKeyShared:
		return "Key_Shared"
	}
	return "Shared"
}

// nackDelay is how long a negatively acknowledged message waits before it
// is redelivered, as the client path's NackRedeliveryDelay.
const nackDelay = time.Second

// localQueue is the in-process consumer's receiver queue (permits it keeps
// granted, as the client path's ReceiverQueueSize).
const localQueue = 1000

// localSource reads a function's subscription on each input topic
// partition through in-process consumers.
type localSource struct {
	r      *runner
	notify chan struct{}
	parts  []*localPart
	queue  []pulsar.Message // parsed, not handed out yet
	at     int
	buf    []broker.LocalEntry
	closed atomic.Bool
}

// localPart is one input topic partition's consumer.
type localPart struct {
	lc        *broker.LocalConsumer
	topic     string
	partition int32
	// handed counts messages handed out since the last flow.
	handed int
}

func (r *runner) openLocalSource(ctx context.Context, topics []string, consumerName string) (*localSource, error) {
	cfg := &r.rec.Config
	s := &localSource{r: r, notify: make(chan struct{}, 1)}
	for _, t := range topics {
		lc, err := r.m.cfg.InProcess.SubscribeLocal(ctx, broker.LocalSubscribeOptions{Topic: t, Subscription: cfg.SubName,
			Type: localSubType(cfg.SubscriptionType), Earliest: cfg.SubscriptionPosition == "Earliest",
			ConsumerName: consumerName, Notify: s.notify})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("subscribe in process to %s: %w", t, err)
		}
		part := int32(-1)
		if i := strings.LastIndex(t, "-partition-"); i >= 0 {
			if n, err := strconv.Atoi(t[i+len("-partition-"):]); err == nil {
				part = int32(n)
			}
		}
		s.parts = append(s.parts, &localPart{lc: lc, topic: t, partition: part})
		lc.Flow(localQueue)
	}
	return s, nil
}

// fill parses what the consumers have queued; an error means one was
// closed by the broker (the session ends and subscribes again).
func (s *localSource) fill() error {
	s.queue, s.at = s.queue[:0], 0
	for _, p := range s.parts {
		var err error
		s.buf, err = p.lc.Poll(s.buf[:0])
		for _, e := range s.buf {
			var perr error
			if s.queue, perr = appendEntryMessages(s.queue, p, e); perr != nil {
				if errors.Is(perr, errChunked) {
					// Chunked messages need the client's reassembly.
					s.r.noInProcess.Store(true)
				}
				return perr
			}
		}
		clear(s.buf)
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *localSource) next() pulsar.Message {
	if s.at >= len(s.queue) {
		return nil
	}
	m := s.queue[s.at].(*localMessage)
	s.queue[s.at] = nil
	s.at++
	p := m.entry.part
	p.handed++
	if p.handed >= localQueue/2 {
		p.lc.Flow(p.handed)
		p.handed = 0
	}
	return m
}

func (s *localSource) Receive(ctx context.Context) (pulsar.Message, error) {
	for {
		if m := s.next(); m != nil {
			return m, nil
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
		if m := s.next(); m != nil {
			return m, nil
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *localSource) drain(buf []pulsar.Message, limit int) []pulsar.Message {
	for len(buf) < limit {
		m := s.next()
		if m == nil {
			return buf
		}
		buf = append(buf, m)
	}
	return buf
}

// Ack acknowledges the message's entry once all of its messages are.
func (s *localSource) Ack(msg pulsar.Message) error {
	e := msg.(*localMessage).entry
	if e.remaining.Add(-1) == 0 && !e.nacked.Load() {
		return e.part.lc.Ack(e.ledgerID, e.entryID)
	}
	return nil
}

// Nack has the message's entry redelivered after nackDelay (the batch's
// other messages with it, as the client does without batch-index acks).
func (s *localSource) Nack(msg pulsar.Message) {
	e := msg.(*localMessage).entry
	if !e.nacked.CompareAndSwap(false, true) || s.closed.Load() {
		return
	}
	time.AfterFunc(nackDelay, func() {
		e.part.lc.Redeliver(e.ledgerID, e.entryID)
	})
}

func (s *localSource) Unsubscribe() error {
	var errs []error
	for _, p := range s.parts {
		if err := p.lc.Unsubscribe(); err != nil && !errors.Is(err, broker.ErrLocalClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close detaches the consumers: what they hold unacknowledged is
// redelivered to the next consumer.
func (s *localSource) Close() {
	s.closed.Store(true)
	for _, p := range s.parts {
		p.lc.Close()
	}
}
