package wire_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func BenchmarkAppendMessage(b *testing.B) {
	buf := make([]byte, 0, 4096)
	hp := wire.BuildPayload(testMeta(), make([]byte, 1024))
	ackSet := []int64{-1, 0x7fff}
	b.ReportAllocs()
	b.SetBytes(int64(len(wire.AppendMessage(nil, 1, 123456, 7890, 1, ackSet, hp))))
	for b.Loop() {
		buf = wire.AppendMessage(buf[:0], 1, 123456, 7890, 1, ackSet, hp)
	}
}

func BenchmarkAppendSendReceipt(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendSendReceipt(buf[:0], 3, 1000, 1000, 123456, 7890)
	}
}

func BenchmarkParseSend(b *testing.B) {
	raw := mustMarshal(b, sendCommand(&pb.CommandSend{
		ProducerId: proto.Uint64(3), SequenceId: proto.Uint64(1000), NumMessages: proto.Int32(10),
		HighestSequenceId: proto.Uint64(1009),
	}))
	var f wire.SendFields
	b.ReportAllocs()
	for b.Loop() {
		if err := wire.ParseSend(raw, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMetadata(b *testing.B) {
	meta := mustMarshal(b, &pb.MessageMetadata{
		ProducerName: proto.String("standalone-0-42"), SequenceId: proto.Uint64(1000), PublishTime: proto.Uint64(1700000000000),
		Properties:         []*pb.KeyValue{{Key: proto.String("trace"), Value: proto.String("abc")}},
		PartitionKey:       proto.String("user-17"),
		NumMessagesInBatch: proto.Int32(10), UncompressedSize: proto.Uint32(10240),
		Compression: pb.CompressionType_LZ4.Enum(), EventTime: proto.Uint64(1700000000000),
	})
	var info wire.MetadataInfo
	b.ReportAllocs()
	for b.Loop() {
		if err := wire.ParseMetadata(meta, &info); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReader replays the same bytes forever.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

func BenchmarkReadFrame(b *testing.B) {
	hp := wire.BuildPayload(testMeta(), make([]byte, 1024))
	frame := wire.AppendPayloadCommand(nil, sendCommand(&pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(2)}), hp)
	rd := wire.NewReader(&loopReader{b: frame}, 1<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := rd.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}
