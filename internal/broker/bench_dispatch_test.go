package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Micro-benchmarks of the dispatch path, per message: entries hold one
// unbatched 128 B message, so ns/op and allocs/op are per message (with
// client batching the per-entry costs are shared by the batch). They run on
// the embedded journal store, as `mb standalone` does, against a fake
// connection whose write buffer is drained as the writer goroutine would.
//
//	go test -run '^$' -bench Dispatch -benchmem ./internal/broker

// dispatchBench is a broker with one topic, one subscription that no
// dispatch goroutine runs (the benchmark drives it), and consumers on a fake
// connection.
type dispatchBench struct {
	b     *Broker
	topic *Topic
	sub   *Subscription
	cn    *conn
	cs    []*Consumer
}

func newDispatchBench(tb testing.TB, subType pb.CommandSubscribe_SubType, consumers int) *dispatchBench {
	tb.Helper()
	md, err := meta.OpenEmbedded(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { md.Close() })
	res := &meta.Resources{Store: md}
	if err := res.Bootstrap(context.Background(), "standalone", meta.ClusterData{}); err != nil {
		tb.Fatal(err)
	}
	store, err := local.Open(local.Options{Dir: tb.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	b := New(Config{Logger: slog.New(slog.DiscardHandler)}, store, res, nil)
	tb.Cleanup(func() {
		b.Shutdown(context.Background())
		store.Close()
	})
	name, _ := naming.ParseTopic("persistent://public/default/bench-dispatch")
	tp, err := b.getTopic(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	cn := &conn{b: b, log: b.log, producers: map[uint64]*Producer{}, consumers: map[uint64]*Consumer{},
		wsignal: make(chan struct{}, 1), closed: make(chan struct{})}
	s := newSubscription(tp, "bench", true, ledger.NewCursorState(-1))
	d, err := newDispatcher(subType, s)
	if err != nil {
		tb.Fatal(err)
	}
	s.disp, s.subType = d, subType
	db := &dispatchBench{b: b, topic: tp, sub: s, cn: cn}
	for i := range consumers {
		c := &Consumer{id: uint64(i + 1), name: fmt.Sprintf("c%d", i), sub: s, cn: cn, permits: 1 << 40}
		if err := d.add(c); err != nil {
			tb.Fatal(err)
		}
		db.cs = append(db.cs, c)
	}
	return db
}

// entry builds the stored form of one message (what a producer's SEND carries).
func benchEntry(seq int, key string) []byte {
	m := &pb.MessageMetadata{ProducerName: proto.String("bench"), SequenceId: proto.Uint64(uint64(seq)),
		PublishTime: proto.Uint64(1_700_000_000_000)}
	if key != "" {
		m.PartitionKey = proto.String(key)
	}
	return wire.BuildPayload(m, make([]byte, 128))
}

// drain empties the fake connection's write buffer, keeping its capacity,
// as the writer goroutine does after each socket write.
func (db *dispatchBench) drain() {
	db.cn.wmu.Lock()
	db.cn.wbuf = db.cn.wbuf[:0]
	db.cn.wmu.Unlock()
	select {
	case <-db.cn.wsignal:
	default:
	}
}

// append stores n entries and waits until they are durable.
func (db *dispatchBench) append(tb testing.TB, data [][]byte) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	wg.Add(len(data))
	for _, d := range data {
		db.topic.ledger.Append(d, func(_ int64, err error) {
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed != nil {
		tb.Fatal(failed)
	}
}

// BenchmarkDispatchDeliverEntry measures deliverEntry alone: parse the
// entry's metadata, pick the consumer, record it as pending, frame MESSAGE
// into the connection's buffer, count it. The ack bookkeeping that follows
// (cursor ack, forget) is included so the pending map stays small, as it
// does with a live consumer.
func BenchmarkDispatchDeliverEntry(b *testing.B) {
	for _, tc := range []struct {
		name      string
		subType   pb.CommandSubscribe_SubType
		consumers int
		key       string
	}{
		{"exclusive", pb.CommandSubscribe_Exclusive, 1, ""},
		{"shared-4", pb.CommandSubscribe_Shared, 4, ""},
		{"key_shared-4", pb.CommandSubscribe_Key_Shared, 4, "key"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db := newDispatchBench(b, tc.subType, tc.consumers)
			data := benchEntry(0, tc.key)
			s := db.sub
			b.SetBytes(128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := ledger.Entry{ID: int64(i), Data: data}
				s.mu.Lock()
				if s.deliverEntry(e, nil) != delivered {
					b.Fatal("not delivered")
				}
				s.cursor.Ack(e.ID)
				s.forget(e.ID)
				s.mu.Unlock()
				if i%1024 == 1023 {
					db.drain()
				}
			}
		})
	}
}

// BenchmarkDispatchFromLedger measures one round of the dispatch loop per
// message: NextUnacked, the ledger read (from the store's cache of recent
// entries, as for a tailing consumer), deliverEntry. Appends happen with the
// timer stopped, 4,096 entries at a time; acks are not included.
func BenchmarkDispatchFromLedger(b *testing.B) {
	db := newDispatchBench(b, pb.CommandSubscribe_Exclusive, 1)
	const chunk = 4096
	data := make([][]byte, chunk)
	for i := range data {
		data[i] = benchEntry(i, "")
	}
	s := db.sub
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		b.StopTimer()
		db.append(b, data)
		b.StartTimer()
		for s.readPos < int64(done+chunk) {
			s.dispatch()
			db.drain()
		}
		b.StopTimer()
		s.mu.Lock()
		clear(s.pending) // as acks would, outside the measurement
		s.mu.Unlock()
		b.StartTimer()
	}
}

// BenchmarkDispatchAck measures the individual ack of one delivered message
// (Subscription.ack with a decoded CommandAck): cursor update and forgetting
// the pending entry. Decoding the ACK frame is not included.
func BenchmarkDispatchAck(b *testing.B) {
	db := newDispatchBench(b, pb.CommandSubscribe_Shared, 1)
	data := benchEntry(0, "")
	s := db.sub
	mid := &pb.MessageIdData{LedgerId: proto.Uint64(uint64(db.topic.ledgerID)), EntryId: proto.Uint64(0)}
	cmd := &pb.CommandAck{AckType: pb.CommandAck_Individual.Enum(), MessageId: []*pb.MessageIdData{mid}}
	const chunk = 4096
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		b.StopTimer()
		s.mu.Lock()
		for id := done; id < done+n; id++ {
			s.deliverEntry(ledger.Entry{ID: int64(id), Data: data}, nil)
		}
		s.mu.Unlock()
		db.drain()
		b.StartTimer()
		for id := done; id < done+n; id++ {
			*mid.EntryId = uint64(id)
			if err := s.ack(cmd); err != nil {
				b.Fatal(err)
			}
		}
	}
}
