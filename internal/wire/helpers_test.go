package wire_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// interesting varint values: boundaries of every varint length and sign.
var edgeUint64s = []uint64{0, 1, 127, 128, 16383, 16384, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 1}

func randU64(r *rand.Rand) uint64 {
	if r.IntN(3) == 0 {
		return edgeUint64s[r.IntN(len(edgeUint64s))]
	}
	return r.Uint64() >> r.UintN(64)
}

func randI64(r *rand.Rand) int64 { return int64(randU64(r)) }
func randI32(r *rand.Rand) int32 { return int32(randU64(r)) }

func randBytes(r *rand.Rand, max int) []byte {
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randString(r *rand.Rand, max int) string { return string(randBytes(r, max)) }

func maybe(r *rand.Rand) bool { return r.IntN(2) == 0 }

func randKeyValues(r *rand.Rand) []*pb.KeyValue {
	var kvs []*pb.KeyValue
	for range r.IntN(3) {
		kvs = append(kvs, &pb.KeyValue{Key: proto.String(randString(r, 8)), Value: proto.String(randString(r, 8))})
	}
	return kvs
}

// randMetadata returns a MessageMetadata with every required field set and a
// random selection of the optional ones.
func randMetadata(r *rand.Rand) *pb.MessageMetadata {
	m := &pb.MessageMetadata{
		ProducerName: proto.String(randString(r, 20)),
		SequenceId:   proto.Uint64(randU64(r)),
		PublishTime:  proto.Uint64(randU64(r)),
		Properties:   randKeyValues(r),
	}
	if maybe(r) {
		m.ReplicatedFrom = proto.String(randString(r, 10))
	}
	if maybe(r) {
		m.PartitionKey = proto.String(randString(r, 10))
	}
	if maybe(r) {
		m.ReplicateTo = []string{randString(r, 5), randString(r, 5)}
	}
	if maybe(r) {
		m.Compression = pb.CompressionType(r.IntN(5)).Enum()
	}
	if maybe(r) {
		m.UncompressedSize = proto.Uint32(uint32(randU64(r)))
	}
	if maybe(r) {
		m.NumMessagesInBatch = proto.Int32(randI32(r))
	}
	if maybe(r) {
		m.EventTime = proto.Uint64(randU64(r))
	}
	if maybe(r) {
		m.EncryptionKeys = []*pb.EncryptionKeys{{Key: proto.String("k"), Value: randBytes(r, 8), Metadata: randKeyValues(r)}}
		m.EncryptionAlgo = proto.String("algo")
		m.EncryptionParam = randBytes(r, 8)
	}
	if maybe(r) {
		m.SchemaVersion = randBytes(r, 8)
	}
	if maybe(r) {
		m.PartitionKeyB64Encoded = proto.Bool(maybe(r))
	}
	if maybe(r) {
		m.OrderingKey = randBytes(r, 10)
	}
	if maybe(r) {
		m.DeliverAtTime = proto.Int64(randI64(r))
	}
	if maybe(r) {
		m.MarkerType = proto.Int32(randI32(r))
	}
	if maybe(r) {
		m.TxnidLeastBits = proto.Uint64(randU64(r))
		m.TxnidMostBits = proto.Uint64(randU64(r))
	}
	if maybe(r) {
		m.HighestSequenceId = proto.Uint64(randU64(r))
	}
	if maybe(r) {
		m.NullValue = proto.Bool(maybe(r))
	}
	if maybe(r) {
		m.Uuid = proto.String(randString(r, 36))
		m.NumChunksFromMsg = proto.Int32(randI32(r))
		m.TotalChunkMsgSize = proto.Int32(randI32(r))
		m.ChunkId = proto.Int32(randI32(r))
	}
	if maybe(r) {
		m.NullPartitionKey = proto.Bool(maybe(r))
	}
	return m
}

// randSend returns a CommandSend with the required fields set.
func randSend(r *rand.Rand) *pb.CommandSend {
	s := &pb.CommandSend{ProducerId: proto.Uint64(randU64(r)), SequenceId: proto.Uint64(randU64(r))}
	if maybe(r) {
		s.NumMessages = proto.Int32(randI32(r))
	}
	if maybe(r) {
		s.TxnidLeastBits = proto.Uint64(randU64(r))
		s.TxnidMostBits = proto.Uint64(randU64(r))
	}
	if maybe(r) {
		s.HighestSequenceId = proto.Uint64(randU64(r))
	}
	if maybe(r) {
		s.IsChunk = proto.Bool(maybe(r))
	}
	if maybe(r) {
		s.Marker = proto.Bool(maybe(r))
	}
	if maybe(r) {
		s.MessageId = &pb.MessageIdData{LedgerId: proto.Uint64(randU64(r)), EntryId: proto.Uint64(randU64(r)), Partition: proto.Int32(3)}
	}
	return s
}

// nilOrBytes mirrors MetadataInfo's convention: nil when the field is absent.
func nilOrBytes[T string | []byte](present bool, v T) []byte {
	if !present {
		return nil
	}
	return []byte(v)
}

// checkMetadata fails t unless info is what ParseMetadata should produce for m.
func checkMetadata(t testing.TB, info *wire.MetadataInfo, m *pb.MessageMetadata) {
	t.Helper()
	want := wire.MetadataInfo{
		ProducerName:          nilOrBytes(m.ProducerName != nil, m.GetProducerName()),
		SequenceID:            m.GetSequenceId(),
		PublishTime:           m.GetPublishTime(),
		PartitionKey:          nilOrBytes(m.PartitionKey != nil, m.GetPartitionKey()),
		PartitionKeyB64:       m.GetPartitionKeyB64Encoded(),
		OrderingKey:           nilOrBytes(m.OrderingKey != nil, m.GetOrderingKey()),
		NumMessagesInBatch:    m.GetNumMessagesInBatch(),
		HasNumMessagesInBatch: m.NumMessagesInBatch != nil,
		EventTime:             m.GetEventTime(),
		DeliverAtTime:         m.GetDeliverAtTime(),
		HasDeliverAtTime:      m.DeliverAtTime != nil,
		Compression:           m.GetCompression(),
		UncompressedSize:      m.GetUncompressedSize(),
		HighestSequenceID:     m.GetHighestSequenceId(),
		UUID:                  nilOrBytes(m.Uuid != nil, m.GetUuid()),
		ChunkID:               m.GetChunkId(),
		NumChunksFromMsg:      m.GetNumChunksFromMsg(),
		TotalChunkMsgSize:     m.GetTotalChunkMsgSize(),
		NullValue:             m.GetNullValue(),
		ReplicatedFrom:        nilOrBytes(m.ReplicatedFrom != nil, m.GetReplicatedFrom()),
		MarkerType:            m.GetMarkerType(),
		HasMarkerType:         m.MarkerType != nil,
	}
	if !metadataInfoEqual(info, &want) {
		t.Fatalf("ParseMetadata mismatch\n got: %+v\nwant: %+v", *info, want)
	}
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func metadataInfoEqual(a, b *wire.MetadataInfo) bool {
	x, y := *a, *b
	if !sameBytes(x.ProducerName, y.ProducerName) || !sameBytes(x.PartitionKey, y.PartitionKey) ||
		!sameBytes(x.OrderingKey, y.OrderingKey) || !sameBytes(x.UUID, y.UUID) ||
		!sameBytes(x.ReplicatedFrom, y.ReplicatedFrom) {
		return false
	}
	x.ProducerName, x.PartitionKey, x.OrderingKey, x.UUID, x.ReplicatedFrom = nil, nil, nil, nil, nil
	y.ProducerName, y.PartitionKey, y.OrderingKey, y.UUID, y.ReplicatedFrom = nil, nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

// checkSend fails t unless f is what ParseSend should produce for s.
func checkSend(t testing.TB, f *wire.SendFields, s *pb.CommandSend) {
	t.Helper()
	want := wire.SendFields{
		ProducerID:           s.GetProducerId(),
		SequenceID:           s.GetSequenceId(),
		NumMessages:          s.GetNumMessages(),
		HighestSequenceID:    s.GetHighestSequenceId(),
		HasHighestSequenceID: s.HighestSequenceId != nil,
		IsChunk:              s.GetIsChunk(),
		Marker:               s.GetMarker(),
	}
	if *f != want {
		t.Fatalf("ParseSend mismatch\n got: %+v\nwant: %+v", *f, want)
	}
}

// mustMarshal marshals m, allowing missing required fields so tests can
// build invalid input.
func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sendCommand(s *pb.CommandSend) *pb.BaseCommand {
	return &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: s}
}

// oneByteReader returns at most one byte per Read, to exercise partial reads.
type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}
