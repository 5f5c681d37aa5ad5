package broker

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/etcd"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// The cost of metadata on the paths that read it: loading a topic (a topic
// policies read and a ledger open, the namespace being cached) and
// answering a lookup (PARTITIONED_METADATA: one partitioned-topic read), with
// the embedded store and with etcd (one in-process member on loopback). The
// ledger is the in-memory one, so the numbers are the broker's and the
// metadata store's share.
//
//	go test -run '^$' -bench 'TopicLoad|Lookup' -benchmem ./internal/broker/

func metadataStores(b *testing.B) map[string]func(b *testing.B) meta.Store {
	return map[string]func(b *testing.B) meta.Store{
		"embedded": func(b *testing.B) meta.Store {
			md, err := meta.OpenEmbedded(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { md.Close() })
			return md
		},
		"etcd": func(b *testing.B) meta.Store {
			c := etcdtest.Start(b, 1)
			s, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Prefix: "/bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func benchBroker(b *testing.B, st meta.Store) *Broker {
	res := &meta.Resources{Store: st}
	if err := res.Bootstrap(context.Background(), "standalone", meta.ClusterData{}); err != nil {
		b.Fatal(err)
	}
	ledgers := memory.New()
	br := New(Config{Logger: slog.New(slog.DiscardHandler)}, ledgers, res, nil)
	b.Cleanup(func() {
		br.Shutdown(context.Background())
		ledgers.Close()
	})
	return br
}

func BenchmarkTopicLoad(b *testing.B) {
	for _, store := range []string{"embedded", "etcd"} {
		b.Run(store, func(b *testing.B) {
			br := benchBroker(b, metadataStores(b)[store](b))
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				name, _ := naming.ParseTopic(fmt.Sprintf("persistent://public/default/load-%d", i))
				if _, err := br.getTopic(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, store := range []string{"embedded", "etcd"} {
		b.Run(store, func(b *testing.B) {
			br := benchBroker(b, metadataStores(b)[store](b))
			cn := testConn(b, br)
			cn.wclosed = true // answers are built and dropped
			ctx := context.Background()
			cmd := &pb.CommandPartitionedTopicMetadata{Topic: proto.String("persistent://public/default/lookup"), RequestId: proto.Uint64(1)}
			b.ResetTimer()
			for b.Loop() {
				cn.handlePartitionedMetadata(ctx, cmd)
			}
		})
	}
}
