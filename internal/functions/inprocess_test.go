package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// The in-process path against a real broker (in-memory ledger): what the
// functions side adds to package broker's local consumer and producer
// (batch entries, message splitting, entry acks, nack redelivery, flow).

func newTestBroker(t *testing.T) *broker.Broker {
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
	b := broker.New(broker.Config{Logger: slog.New(slog.DiscardHandler)}, store, res, nil)
	t.Cleanup(func() {
		b.Shutdown(context.Background())
		store.Close()
	})
	return b
}

func newLocalTestRunner(b *broker.Broker) *runner {
	return &runner{m: &Manager{cfg: ManagerConfig{InProcess: b}}, rec: Record{Config: Config{SubName: "fn", SubscriptionType: SubShared, SubscriptionPosition: "Earliest"}}}
}

// sendBatch publishes values as one batch entry through a localSender and
// waits for every receipt.
func sendBatch(t *testing.T, s *localSender, values ...string) {
	t.Helper()
	errc := make(chan error, len(values))
	for _, v := range values {
		s.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(v), Key: "k" + v,
			Properties: map[string]string{"p": v}, EventTime: time.UnixMilli(1234)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errc <- err })
	}
	s.flush()
	for range values {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no receipt")
		}
	}
}

func receiveLocal(t *testing.T, src *localSource) *localMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := src.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*localMessage)
}

func TestLocalSourceBatchAckNack(t *testing.T) {
	b := newTestBroker(t)
	const topic = "persistent://public/default/fn-in"
	s, err := newLocalSender(context.Background(), b, topic, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sendBatch(t, s, "a", "b", "c") // one entry of three messages
	sendBatch(t, s, "d")
	r := newLocalTestRunner(b)
	src, err := r.openLocalSource(context.Background(), []string{topic}, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []*localMessage
	for range 4 {
		got = append(got, receiveLocal(t, src))
	}
	for i, want := range []string{"a", "b", "c", "d"} {
		m := got[i]
		if string(m.Payload()) != want || m.Key() != "k"+want || m.Properties()["p"] != want || m.EventTime().UnixMilli() != 1234 || m.Topic() != topic {
			t.Fatalf("message %d: %q key %q props %v event %v topic %s", i, m.Payload(), m.Key(), m.Properties(), m.EventTime(), m.Topic())
		}
	}
	if got[1].BatchIdx() != 1 || got[1].BatchSize() != 3 || got[3].EntryID() != 1 || got[3].PartitionIdx() != -1 {
		t.Fatalf("ids %v %v", got[1].ID(), got[3].ID())
	}
	// Acking two of the batch's three messages leaves the entry pending;
	// a nack of the third redelivers the whole entry after the delay.
	src.Ack(got[0])
	src.Ack(got[1])
	start := time.Now()
	src.Nack(got[2])
	if err := src.Ack(got[3]); err != nil {
		t.Fatal(err)
	}
	var again []*localMessage
	for range 3 {
		again = append(again, receiveLocal(t, src))
	}
	if time.Since(start) < nackDelay/2 {
		t.Fatalf("redelivered after %v, before the nack delay", time.Since(start))
	}
	for i, m := range again {
		if m.EntryID() != 0 || m.BatchIdx() != int32(i) || m.RedeliveryCount() != 1 {
			t.Fatalf("redelivery %d: %v count %d", i, m.ID(), m.RedeliveryCount())
		}
		src.Ack(m)
	}
	// Everything acknowledged: the subscription's backlog is empty.
	waitFor(t, "backlog 0", func() bool {
		st, err := b.TopicStats(context.Background(), mustParse(t, topic))
		return err == nil && st.Subscriptions["fn"].Backlog == 0
	})
}

func TestLocalSourceFlowAndClose(t *testing.T) {
	b := newTestBroker(t)
	const topic = "persistent://public/default/fn-flow"
	s, err := newLocalSender(context.Background(), b, topic, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	values := make([]string, 3*localQueue)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	// Single-message entries, so permits count entries.
	for _, v := range values {
		errc := make(chan error, 1)
		s.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errc <- err })
		s.flush()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	r := newLocalTestRunner(b)
	src, err := r.openLocalSource(context.Background(), []string{topic}, "c1")
	if err != nil {
		t.Fatal(err)
	}
	// Without handing messages out, the broker stops at the receiver queue.
	delivered := 0
	waitFor(t, "the receiver queue's worth delivered", func() bool {
		src.fill()
		delivered += len(src.queue)
		return delivered >= localQueue
	})
	if delivered != localQueue {
		t.Fatalf("%d delivered with %d permits", delivered, localQueue)
	}
	time.Sleep(50 * time.Millisecond) // absence of more deliveries: a short bounded wait
	if src.fill(); len(src.queue) != 0 {
		t.Fatalf("%d entries delivered past the permits", len(src.queue))
	}
	// fill dropped what it had parsed; take everything through Receive
	// after a close and a new source (the unacknowledged come back).
	src.Close()
	if _, err := src.Receive(context.Background()); !errors.Is(err, broker.ErrLocalClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	src2, err := r.openLocalSource(context.Background(), []string{topic}, "c2")
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	// Shared: redelivered entries come first, then interleave with new
	// ones; every message arrives once.
	seen := map[string]bool{}
	for range values {
		m := receiveLocal(t, src2)
		if seen[string(m.Payload())] {
			t.Fatalf("%q delivered twice", m.Payload())
		}
		seen[string(m.Payload())] = true
		src2.Ack(m)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustParse(t *testing.T, s string) naming.Topic {
	t.Helper()
	n, err := naming.ParseTopic(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
