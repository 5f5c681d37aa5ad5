package functions

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// errChunked: a chunk of a large message reached the in-process path,
// which does not reassemble chunks (the client path does).
var errChunked = errors.New("chunked message: the in-process path does not reassemble chunks")

// localEntry is the acknowledgement state of one delivered entry: it is
// acknowledged when its last message is, unless one was nacked (then the
// whole entry is redelivered).
type localEntry struct {
	part              *localPart
	ledgerID, entryID int64
	remaining         atomic.Int32
	nacked            atomic.Bool
}

// appendEntryMessages splits e into its messages (those its ack set still
// holds) and appends them to msgs.
func appendEntryMessages(msgs []pulsar.Message, p *localPart, e broker.LocalEntry) ([]pulsar.Message, error) {
	metaBytes, payload, err := wire.SplitPayload(e.Data)
	if err != nil {
		return msgs, fmt.Errorf("entry %d:%d: %w", e.LedgerID, e.EntryID, err)
	}
	var md pb.MessageMetadata
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(metaBytes, &md); err != nil {
		return msgs, fmt.Errorf("entry %d:%d metadata: %w", e.LedgerID, e.EntryID, err)
	}
	if md.GetNumChunksFromMsg() > 1 {
		return msgs, errChunked
	}
	body := payload
	if md.GetCompression() != pb.CompressionType_NONE {
		if body, err = wire.Decompress(md.GetCompression(), payload, int(md.GetUncompressedSize())); err != nil {
			return msgs, fmt.Errorf("entry %d:%d: %w", e.LedgerID, e.EntryID, err)
		}
	}
	le := &localEntry{part: p, ledgerID: e.LedgerID, entryID: e.EntryID}
	base := localMessage{entry: le, topic: p.topic, producer: md.GetProducerName(),
		publishTime: int64(md.GetPublishTime()), eventTime: int64(md.GetEventTime()), key: md.GetPartitionKey(),
		orderingKey: string(md.GetOrderingKey()), props: kvMap(md.GetProperties()), redeliveries: e.RedeliveryCount,
		ledgerID: e.LedgerID, entryID: e.EntryID, batchIdx: -1, partition: p.partition}
	if md.NumMessagesInBatch == nil {
		le.remaining.Store(1)
		m := base
		m.payload = body
		return append(msgs, &m), nil
	}
	n := int(md.GetNumMessagesInBatch())
	start := len(msgs)
	var smm pb.SingleMessageMetadata
	err = wire.ForEachBatchMessage(body, n, func(i int, raw, data []byte) error {
		if e.AckSet != nil && (i/64 >= len(e.AckSet) || e.AckSet[i/64]&(1<<(i%64)) == 0) {
			return nil // acknowledged before
		}
		smm.Reset()
		if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(raw, &smm); err != nil {
			return fmt.Errorf("single message metadata %d: %w", i, err)
		}
		m := base
		m.payload, m.batchIdx, m.batchSize = data, int32(i), int32(n)
		m.key, m.orderingKey = smm.GetPartitionKey(), string(smm.GetOrderingKey())
		if smm.EventTime != nil {
			m.eventTime = int64(smm.GetEventTime())
		}
		if len(smm.GetProperties()) > 0 {
			m.props = kvMap(smm.GetProperties())
		}
		msgs = append(msgs, &m)
		return nil
	})
	if err != nil {
		return msgs[:start], fmt.Errorf("entry %d:%d: %w", e.LedgerID, e.EntryID, err)
	}
	le.remaining.Store(int32(len(msgs) - start))
	return msgs, nil
}

func kvMap(kvs []*pb.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// localMessage is a message read in process. It is a pulsar.Message (and
// its own pulsar.MessageID) so that the instance handles both paths'
// messages alike.
type localMessage struct {
	entry        *localEntry
	topic        string
	producer     string
	key          string
	orderingKey  string
	props        map[string]string
	payload      []byte
	publishTime  int64 // unix millis
	eventTime    int64 // unix millis, 0: none
	redeliveries uint32

	ledgerID, entryID   int64
	batchIdx, batchSize int32
	partition           int32
}

var (
	_ pulsar.Message   = (*localMessage)(nil)
	_ pulsar.MessageID = (*localMessage)(nil)
)

func (m *localMessage) Topic() string                 { return m.topic }
func (m *localMessage) ProducerName() string          { return m.producer }
func (m *localMessage) Properties() map[string]string { return m.props }
func (m *localMessage) Payload() []byte               { return m.payload }
func (m *localMessage) ID() pulsar.MessageID          { return m }
func (m *localMessage) PublishTime() time.Time        { return time.UnixMilli(m.publishTime) }
func (m *localMessage) EventTime() time.Time {
	if m.eventTime == 0 {
		return time.Time{}
	}
	return time.UnixMilli(m.eventTime)
}
func (m *localMessage) Key() string               { return m.key }
func (m *localMessage) OrderingKey() string       { return m.orderingKey }
func (m *localMessage) RedeliveryCount() uint32   { return m.redeliveries }
func (m *localMessage) IsReplicated() bool        { return false }
func (m *localMessage) GetReplicatedFrom() string { return "" }
func (m *localMessage) GetSchemaValue(any) error {
	return errors.New("in-process message: no schema decoding")
}
func (m *localMessage) SchemaVersion() []byte                           { return nil }
func (m *localMessage) GetEncryptionContext() *pulsar.EncryptionContext { return nil }
func (m *localMessage) Index() *uint64                                  { return nil }
func (m *localMessage) BrokerPublishTime() *time.Time                   { return nil }

// The pulsar.MessageID side.

func (m *localMessage) LedgerID() int64     { return m.ledgerID }
func (m *localMessage) EntryID() int64      { return m.entryID }
func (m *localMessage) BatchIdx() int32     { return m.batchIdx }
func (m *localMessage) PartitionIdx() int32 { return m.partition }
func (m *localMessage) BatchSize() int32    { return m.batchSize }
func (m *localMessage) String() string {
	return fmt.Sprintf("%d:%d:%d", m.ledgerID, m.entryID, m.partition)
}

// Serialize encodes the id as the protocol's MessageIdData, as the
// client's ids serialize.
func (m *localMessage) Serialize() []byte {
	id := &pb.MessageIdData{LedgerId: proto.Uint64(uint64(m.ledgerID)), EntryId: proto.Uint64(uint64(m.entryID))}
	if m.partition >= 0 {
		id.Partition = proto.Int32(m.partition)
	}
	if m.batchIdx >= 0 {
		id.BatchIndex, id.BatchSize = proto.Int32(m.batchIdx), proto.Int32(m.batchSize)
	}
	b, _ := proto.Marshal(id)
	return b
}
