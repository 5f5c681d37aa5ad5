package broker

import (
	"bytes"
	"context"
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

// harness is a broker over the in-memory store with a fake client
// connection whose outgoing frames the test reads.
type harness struct {
	t     *testing.T
	b     *Broker
	topic *Topic
	cn    *conn
}

func newHarness(t *testing.T) *harness {
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
	b := New(Config{Logger: slog.New(slog.DiscardHandler)}, store, res, nil)
	t.Cleanup(func() {
		b.Shutdown(context.Background())
		store.Close()
	})
	name, _ := naming.ParseTopic("persistent://public/default/unit")
	tp, err := b.getTopic(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	cn := &conn{b: b, log: b.log, producers: map[uint64]*Producer{}, consumers: map[uint64]*Consumer{},
		wsignal: make(chan struct{}, 1), closed: make(chan struct{})}
	return &harness{t: t, b: b, topic: tp, cn: cn}
}

func (h *harness) publish(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		hp := wire.BuildPayload(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(uint64(i)),
			PublishTime: proto.Uint64(1)}, []byte(fmt.Sprint(i)))
		done := make(chan error, 1)
		h.topic.ledger.Append(hp, func(_ int64, err error) { done <- err })
		if err := <-done; err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) subscribe(subType pb.CommandSubscribe_SubType) (*Subscription, *Consumer) {
	h.t.Helper()
	s, _ := h.topic.getOrCreateSubscription("s", 0, func() *Subscription {
		return newSubscription(h.topic, "s", true, initialCursor(h.topic, &pb.CommandSubscribe{
			InitialPosition: pb.CommandSubscribe_Earliest.Enum()}))
	})
	c := &Consumer{id: uint64(len(h.cn.consumers) + 1), sub: s, cn: h.cn}
	if err := s.attach(c, subType); err != nil {
		h.t.Fatal(err)
	}
	h.cn.consumers[c.id] = c
	return s, c
}

type delivery struct {
	entry        int64
	redeliveries uint32
}

// receive waits for n MESSAGE frames written to the fake connection.
func (h *harness) receive(n int) []delivery {
	h.t.Helper()
	var out []delivery
	deadline := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case <-h.cn.wsignal:
		case <-deadline:
			h.t.Fatalf("got %d of %d messages: %v", len(out), n, out)
		}
		h.cn.wmu.Lock()
		buf := h.cn.wbuf
		h.cn.wbuf = nil
		h.cn.wmu.Unlock()
		r := wire.NewReader(bytes.NewReader(buf), 1<<20)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				break
			}
			cmd, _ := f.Command()
			m := cmd.GetMessage()
			out = append(out, delivery{int64(m.GetMessageId().GetEntryId()), m.GetRedeliveryCount()})
		}
	}
	if len(out) != n {
		h.t.Fatalf("got %d messages, want %d: %v", len(out), n, out)
	}
	return out
}

func (h *harness) ack(s *Subscription, ids ...int64) {
	cmd := &pb.CommandAck{AckType: pb.CommandAck_Individual.Enum()}
	for _, id := range ids {
		cmd.MessageId = append(cmd.MessageId, &pb.MessageIdData{LedgerId: proto.Uint64(uint64(h.topic.ledgerID)), EntryId: proto.Uint64(uint64(id))})
	}
	if err := s.ack(cmd); err != nil {
		h.t.Fatal(err)
	}
}

func entries(ds []delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.entry
	}
	return out
}

func TestSubscriptionFlowAckAndRedeliver(t *testing.T) {
	h := newHarness(t)
	h.publish(10)
	s, c := h.subscribe(pb.CommandSubscribe_Exclusive)
	s.flow(c, 5)
	if got := entries(h.receive(5)); fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("first window: %v", got)
	}
	h.ack(s, 0, 1, 3)
	if md := s.markDelete(); md != 1 {
		t.Fatalf("mark-delete %d after acking 0,1,3", md)
	}
	// Redeliver everything unacked: 2 and 4 come back, in order, counted.
	s.redeliver(c, nil)
	s.flow(c, 2)
	got := h.receive(2)
	if fmt.Sprint(got) != "[{2 1} {4 1}]" {
		t.Fatalf("redelivered: %v", got)
	}
	h.ack(s, 2, 4)
	s.flow(c, 10)
	if got := entries(h.receive(5)); fmt.Sprint(got) != "[5 6 7 8 9]" {
		t.Fatalf("second window: %v", got)
	}
	h.ack(s, 5, 6, 7, 8, 9)
	if md := s.markDelete(); md != 9 {
		t.Fatalf("mark-delete %d after acking all", md)
	}
}

func TestSubscriptionConsumerLeavingHandsOverPending(t *testing.T) {
	h := newHarness(t)
	h.publish(4)
	s, c1 := h.subscribe(pb.CommandSubscribe_Shared)
	s.flow(c1, 4)
	h.receive(4)
	h.ack(s, 1)
	_, c2 := h.subscribe(pb.CommandSubscribe_Shared)
	s.removeConsumer(c1)
	s.flow(c2, 10)
	got := h.receive(3)
	if fmt.Sprint(got) != "[{0 1} {2 1} {3 1}]" {
		t.Fatalf("handed over: %v", got)
	}
}

func TestCumulativeAckRefusedOnShared(t *testing.T) {
	h := newHarness(t)
	s, _ := h.subscribe(pb.CommandSubscribe_Shared)
	err := s.ack(&pb.CommandAck{AckType: pb.CommandAck_Cumulative.Enum(),
		MessageId: []*pb.MessageIdData{{LedgerId: proto.Uint64(uint64(h.topic.ledgerID)), EntryId: proto.Uint64(0)}}})
	if serverError(err) != pb.ServerError_NotAllowedError {
		t.Fatalf("cumulative ack on shared: %v", err)
	}
}
