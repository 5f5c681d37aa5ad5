package functions

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// sender is an output producer: the Pulsar client's or an in-process one.
type sender interface {
	SendAsync(ctx context.Context, pm *pulsar.ProducerMessage, sent func(pulsar.MessageID, *pulsar.ProducerMessage, error))
	Close()
}

// localBatchMax bounds a batch entry of the in-process producer (messages
// and bytes), as the client's batching limits do.
const (
	localBatchMax      = 1000
	localBatchMaxBytes = 128 << 10
)

// localSender publishes through an in-process producer. Messages without
// a sequence id are gathered into one batch entry per flush (the
// instance flushes after each batch of calls); a message with its own
// sequence id (EFFECTIVELY_ONCE) is sent at once as an entry of its own.
type localSender struct {
	lp *broker.LocalProducer

	mu      sync.Mutex
	nextSeq uint64
	pending []localPending
	bytes   int
}

type localPending struct {
	pm   *pulsar.ProducerMessage
	sent func(pulsar.MessageID, *pulsar.ProducerMessage, error)
}

func newLocalSender(ctx context.Context, ip InProcess, topic, name string) (*localSender, error) {
	lp, err := ip.ProduceLocal(ctx, broker.LocalProducerOptions{Topic: topic, Name: name})
	if err != nil {
		return nil, fmt.Errorf("in-process producer for %s: %w", topic, err)
	}
	return &localSender{lp: lp, nextSeq: uint64(lp.LastSequenceID() + 1)}, nil
}

func (s *localSender) SendAsync(_ context.Context, pm *pulsar.ProducerMessage, sent func(pulsar.MessageID, *pulsar.ProducerMessage, error)) {
	if pm.SequenceID != nil {
		s.flush()
		seq := uint64(*pm.SequenceID)
		hp := encodeSingle(s.lp.Name(), seq, pm)
		s.lp.Send(hp, seq, seq, 1, func(_, _ int64, err error) { sent(nil, pm, err) })
		return
	}
	s.mu.Lock()
	s.pending = append(s.pending, localPending{pm: pm, sent: sent})
	s.bytes += len(pm.Payload)
	full := len(s.pending) >= localBatchMax || s.bytes >= localBatchMaxBytes
	s.mu.Unlock()
	if full {
		s.flush()
	}
}

// flush sends the gathered messages as one batch entry.
func (s *localSender) flush() {
	s.mu.Lock()
	batch := s.pending
	s.pending, s.bytes = nil, 0
	if len(batch) == 0 {
		s.mu.Unlock()
		return
	}
	first := s.nextSeq
	s.nextSeq += uint64(len(batch))
	// Sends are handed over in sequence order: the lock is held across.
	hp := encodeBatch(s.lp.Name(), first, batch)
	s.lp.Send(hp, first, first+uint64(len(batch))-1, len(batch), func(_, _ int64, err error) {
		for _, p := range batch {
			p.sent(nil, p.pm, err)
		}
	})
	s.mu.Unlock()
}

func (s *localSender) Close() {
	s.flush()
	s.lp.Close()
}

// closed reports whether the broker closed the producer (topic unloaded):
// the runner makes a new one.
func (s *localSender) closed() bool { return s.lp.Closed() }

func producerProps(m map[string]string) []*pb.KeyValue {
	if len(m) == 0 {
		return nil
	}
	kvs := make([]*pb.KeyValue, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, &pb.KeyValue{Key: proto.String(k), Value: proto.String(v)})
	}
	return kvs
}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// encodeSingle is one message as a client sends it without batching.
func encodeSingle(producer string, seq uint64, pm *pulsar.ProducerMessage) []byte {
	md := &pb.MessageMetadata{ProducerName: proto.String(producer), SequenceId: proto.Uint64(seq),
		PublishTime: proto.Uint64(nowMs()), Properties: producerProps(pm.Properties)}
	if pm.Key != "" {
		md.PartitionKey = proto.String(pm.Key)
	}
	if !pm.EventTime.IsZero() {
		md.EventTime = proto.Uint64(uint64(pm.EventTime.UnixMilli()))
	}
	return wire.BuildPayload(md, pm.Payload)
}

// encodeBatch is a batch entry as the client's batch builder makes it:
// [u32 size][SingleMessageMetadata][payload] per message, uncompressed.
func encodeBatch(producer string, first uint64, batch []localPending) []byte {
	var body []byte
	var smm pb.SingleMessageMetadata
	for _, p := range batch {
		smm.Reset()
		smm.PayloadSize = proto.Int32(int32(len(p.pm.Payload)))
		smm.Properties = producerProps(p.pm.Properties)
		if p.pm.Key != "" {
			smm.PartitionKey = proto.String(p.pm.Key)
		}
		if !p.pm.EventTime.IsZero() {
			smm.EventTime = proto.Uint64(uint64(p.pm.EventTime.UnixMilli()))
		}
		n := proto.Size(&smm)
		body = binary.BigEndian.AppendUint32(body, uint32(n))
		body, _ = proto.MarshalOptions{}.MarshalAppend(body, &smm)
		body = append(body, p.pm.Payload...)
	}
	md := &pb.MessageMetadata{ProducerName: proto.String(producer), SequenceId: proto.Uint64(first),
		PublishTime: proto.Uint64(nowMs()), NumMessagesInBatch: proto.Int32(int32(len(batch))),
		HighestSequenceId: proto.Uint64(first + uint64(len(batch)) - 1), UncompressedSize: proto.Uint32(uint32(len(body)))}
	return wire.BuildPayload(md, body)
}
