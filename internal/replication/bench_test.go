package replication

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// BenchmarkReplicate measures the replicator's own cost per entry (read,
// re-encode the metadata, frame, send, receipt) against the fake remote on
// loopback: unbatched 128 B messages and batches of 1,000 of them.
func BenchmarkReplicate(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			remote := newFakeRemote(&testing.T{}, nil)
			defer remote.ln.Close()
			l, _ := memory.New().Open(context.Background(), "persistent://t/ns/bench")
			md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(1)}
			if batch > 1 {
				md.NumMessagesInBatch = proto.Int32(int32(batch))
			}
			data := wire.BuildPayload(md, make([]byte, 128*batch))
			done := make(chan struct{})
			for i := 0; i < b.N; i++ {
				last := i == b.N-1
				l.Append(data, func(int64, error) {
					if last {
						close(done)
					}
				})
			}
			<-done
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			r := Start(Config{Topic: "persistent://t/ns/bench", LocalCluster: "local", RemoteCluster: "remote", LedgerID: l.ID(), Source: l, Start: -1,
				Save: func(int64) {}, Endpoint: func(context.Context) (Endpoint, error) { return Endpoint{Addr: remote.ln.Addr().String()}, nil }})
			for r.MarkDelete() < l.LastEntryID() {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			r.Stop()
		})
	}
}

// BenchmarkPrepare compares the replicator's per-entry rewrite (scan the
// metadata, append the additions) with decoding and re-encoding the whole
// metadata (what it did before), on a 128 B message with a key and two
// properties, in the same run.
func BenchmarkPrepare(b *testing.B) {
	md := &pb.MessageMetadata{ProducerName: proto.String("producer-1"), SequenceId: proto.Uint64(42), PublishTime: proto.Uint64(1_700_000_000_000),
		PartitionKey: proto.String("key-7"), Properties: []*pb.KeyValue{{Key: proto.String("a"), Value: proto.String("1")}, {Key: proto.String("b"), Value: proto.String("2")}}}
	e := ledger.Entry{ID: 12345, Data: wire.BuildPayload(md, make([]byte, 128))}
	r := &Replicator{cfg: Config{LocalCluster: "local", RemoteCluster: "remote", LedgerID: 7}}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for i := 0; i < b.N; i++ {
			hp, _, _, err := r.prepare(buf[:0], e, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			buf = hp
		}
	})
	b.Run("reencode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			meta, payload, _ := wire.SplitPayload(e.Data)
			var m pb.MessageMetadata
			if err := proto.Unmarshal(meta, &m); err != nil {
				b.Fatal(err)
			}
			m.ReplicatedFrom = proto.String("local")
			m.Properties = append(m.Properties, &pb.KeyValue{Key: proto.String(geo.SourcePositionProperty), Value: proto.String(geo.FormatSourcePosition(7, e.ID))})
			_ = wire.BuildPayload(&m, payload)
		}
	})
}

// BenchmarkFrames measures building and writing the SEND frames of one
// read of 64 entries (to io.Discard): payloads copied into the frames
// (copy) against large payloads written from the entries (zerocopy, what
// the replicator does on a plaintext link), for unbatched 128 B messages
// and batches of 128 KiB.
func BenchmarkFrames(b *testing.B) {
	r := &Replicator{cfg: Config{LocalCluster: "local", RemoteCluster: "remote", LedgerID: 7}}
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: new(uint64), NumMessages: new(int32)}}
	for _, size := range []int{128, 128 << 10} {
		md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(1)}
		es := make([]ledger.Entry, 64)
		for i := range es {
			es[i] = ledger.Entry{ID: int64(i), Data: wire.BuildPayload(md, make([]byte, size))}
		}
		for _, zeroCopy := range []bool{false, true} {
			name := fmt.Sprintf("payload=%d/copy", size)
			if zeroCopy {
				name = fmt.Sprintf("payload=%d/zerocopy", size)
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(es) * len(es[0].Data)))
				var frames []byte
				var tails []frameTail
				var bufs net.Buffers
				for i := 0; i < b.N; i++ {
					frames, tails = frames[:0], tails[:0]
					for _, e := range es {
						p, _, err := r.inspect(e, nil, nil)
						if err != nil {
							b.Fatal(err)
						}
						var tail []byte
						frames, tail, _ = r.appendFrame(frames, cmd, p, e.ID, zeroCopy)
						if tail != nil {
							tails = append(tails, frameTail{end: len(frames), data: tail})
						}
					}
					bufs = gather(bufs[:0], frames, tails)
					if _, err := bufs.WriteTo(io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
