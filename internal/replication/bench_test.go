package replication

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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
