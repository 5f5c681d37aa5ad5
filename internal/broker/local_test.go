package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

const localTopic = "persistent://public/default/unit"

func newLocalBroker(t *testing.T, dedup bool) *Broker {
	t.Helper()
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	res := &meta.Resources{Store: md}
	if err := res.Bootstrap(context.Background(), "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	b := New(Config{Logger: slog.New(slog.DiscardHandler), DeduplicationEnabled: dedup}, store, res, nil)
	t.Cleanup(func() {
		b.Shutdown(context.Background())
		store.Close()
	})
	return b
}

// localSend publishes one message with sequence id seq and waits for its
// receipt.
func localSend(t *testing.T, p *LocalProducer, seq uint64, payload string) (int64, error) {
	t.Helper()
	hp := wire.BuildPayload(&pb.MessageMetadata{ProducerName: proto.String(p.Name()), SequenceId: proto.Uint64(seq),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, []byte(payload))
	type res struct {
		entry int64
		err   error
	}
	done := make(chan res, 1)
	p.Send(hp, seq, seq, 1, func(_, entryID int64, err error) { done <- res{entryID, err} })
	select {
	case r := <-done:
		return r.entry, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("no receipt")
		return 0, nil
	}
}

// localReceive polls lc until it has n entries (or fails after a while).
func localReceive(t *testing.T, lc *LocalConsumer, notify chan struct{}, n int) []LocalEntry {
	t.Helper()
	var got []LocalEntry
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		var err error
		if got, err = lc.Poll(got); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if len(got) >= n {
			break
		}
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("received %d entries, want %d", len(got), n)
		}
	}
	return got
}

// assertNothing checks that nothing more is delivered for a moment.
func assertNothing(t *testing.T, lc *LocalConsumer) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // absence of an event: a short bounded wait
	if got, _ := lc.Poll(nil); len(got) != 0 {
		t.Fatalf("unexpected delivery of %d entries", len(got))
	}
}

func TestLocalConsumerFlowAckRedeliver(t *testing.T) {
	b := newLocalBroker(t, false)
	ctx := context.Background()
	p, err := b.ProduceLocal(ctx, LocalProducerOptions{Topic: localTopic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 5 {
		if _, err := localSend(t, p, uint64(i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	notify := make(chan struct{}, 1)
	lc, err := b.SubscribeLocal(ctx, LocalSubscribeOptions{Topic: localTopic, Subscription: "s", Type: "Shared", Earliest: true, ConsumerName: "c1", Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	// No permits, no delivery.
	assertNothing(t, lc)
	lc.Flow(2)
	got := localReceive(t, lc, notify, 2)
	if got[0].EntryID != 0 || got[1].EntryID != 1 {
		t.Fatalf("got entries %d, %d", got[0].EntryID, got[1].EntryID)
	}
	assertNothing(t, lc) // permits used up
	// Acks move the real cursor.
	if err := lc.Ack(got[0].LedgerID, 0); err != nil {
		t.Fatal(err)
	}
	s := lc.cs.sub
	if md := s.markDelete(); md != 0 {
		t.Fatalf("mark-delete %d after acking entry 0", md)
	}
	// A redelivery request brings entry 1 back, counted.
	lc.Redeliver(got[1].LedgerID, 1)
	lc.Flow(1)
	again := localReceive(t, lc, notify, 1)
	if again[0].EntryID != 1 || again[0].RedeliveryCount != 1 {
		t.Fatalf("redelivered %+v", again[0])
	}
	stats, err := b.TopicStats(ctx, mustTopic(t, localTopic))
	if err != nil {
		t.Fatal(err)
	}
	if sub := stats.Subscriptions["s"]; sub.Backlog != 4 || len(sub.Consumers) != 1 || sub.Consumers[0].Name != "c1" {
		t.Fatalf("subscription stats %+v", sub)
	}
	// Closing hands the unacknowledged entry to another consumer.
	notify2 := make(chan struct{}, 1)
	lc2, err := b.SubscribeLocal(ctx, LocalSubscribeOptions{Topic: localTopic, Subscription: "s", Type: "Shared", ConsumerName: "c2", Notify: notify2})
	if err != nil {
		t.Fatal(err)
	}
	defer lc2.Close()
	lc.Close()
	if _, err := lc.Poll(nil); !errors.Is(err, ErrLocalClosed) {
		t.Fatalf("poll after close: %v", err)
	}
	lc2.Flow(10)
	rest := localReceive(t, lc2, notify2, 4)
	if rest[0].EntryID != 1 {
		t.Fatalf("first entry after close %d, want 1", rest[0].EntryID)
	}
	// Unsubscribe is refused while another consumer is attached, then works.
	for _, e := range rest {
		if err := lc2.Ack(e.LedgerID, e.EntryID); err != nil {
			t.Fatal(err)
		}
	}
	if md := lc2.cs.sub.markDelete(); md != 4 {
		t.Fatalf("mark-delete %d after acking everything", md)
	}
	if err := lc2.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	tp, err := b.getTopic(ctx, mustTopic(t, localTopic))
	if err != nil || tp.hasSubscription("s") {
		t.Fatalf("subscription still there after unsubscribe (%v)", err)
	}
}

func TestLocalConsumerClosedByBroker(t *testing.T) {
	b := newLocalBroker(t, false)
	ctx := context.Background()
	notify := make(chan struct{}, 1)
	lc, err := b.SubscribeLocal(ctx, LocalSubscribeOptions{Topic: localTopic, Subscription: "s", Type: "Failover", Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.ProduceLocal(ctx, LocalProducerOptions{Topic: localTopic, Name: "fn"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UnloadTopic(localTopic); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notify:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal on unload")
	}
	if !lc.Done() || !p.Closed() {
		t.Fatalf("after unload: consumer done %v, producer closed %v", lc.Done(), p.Closed())
	}
	if _, err := localSend(t, p, 0, "x"); !errors.Is(err, ErrLocalClosed) {
		t.Fatalf("send after unload: %v", err)
	}
	lc.Close() // idempotent after the broker's close
	p.Close()
}

func TestLocalProducerDedup(t *testing.T) {
	b := newLocalBroker(t, true)
	ctx := context.Background()
	p, err := b.ProduceLocal(ctx, LocalProducerOptions{Topic: localTopic, Name: "fn-x"})
	if err != nil {
		t.Fatal(err)
	}
	if p.LastSequenceID() != -1 {
		t.Fatalf("last sequence id %d on a new producer", p.LastSequenceID())
	}
	if e, err := localSend(t, p, 7, "a"); err != nil || e != 0 {
		t.Fatalf("first send: entry %d, %v", e, err)
	}
	if e, err := localSend(t, p, 7, "a"); err != nil || e != -1 {
		t.Fatalf("duplicate: entry %d, %v (want -1, nil)", e, err)
	}
	p.Close()
	// A new producer of the same name sees the stored sequence id.
	p2, err := b.ProduceLocal(ctx, LocalProducerOptions{Topic: localTopic, Name: "fn-x"})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.LastSequenceID() != 7 {
		t.Fatalf("last sequence id %d, want 7", p2.LastSequenceID())
	}
	if _, err := b.ProduceLocal(ctx, LocalProducerOptions{Topic: localTopic, Name: "fn-x"}); err == nil {
		t.Fatal("a second producer of the same name was accepted")
	}
	big := make([]byte, b.cfg.MaxMessageSize+1)
	hp := wire.BuildPayload(&pb.MessageMetadata{ProducerName: proto.String("fn-x"), SequenceId: proto.Uint64(8), PublishTime: proto.Uint64(1)}, big)
	errc := make(chan error, 1)
	p2.Send(hp, 8, 8, 1, func(_, _ int64, err error) { errc <- err })
	if err := <-errc; err == nil {
		t.Fatal("an oversized message was stored")
	}
}

func mustTopic(t *testing.T, s string) naming.Topic {
	t.Helper()
	n, err := naming.ParseTopic(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
