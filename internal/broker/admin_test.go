package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestAdminFlowCounterRates(t *testing.T) {
	var f flowCounter
	if m, b := f.rates(time.Now()); m != 0 || b != 0 {
		t.Fatalf("rates before any traffic: %v %v", m, b)
	}
	f.add(10, 100)
	start := time.Unix(0, f.start.Load())
	if m, _ := f.rates(start.Add(500 * time.Millisecond)); m != 0 {
		t.Fatalf("rate over less than a window: %v", m)
	}
	if m, b := f.rates(start.Add(2 * time.Second)); m != 5 || b != 50 {
		t.Fatalf("first sample: %v msg/s %v B/s, want 5 and 50", m, b)
	}
	f.add(30, 300)
	// Within a window of the last sample the rates stay.
	if m, _ := f.rates(start.Add(2500 * time.Millisecond)); m != 5 {
		t.Fatalf("repeated sample: %v", m)
	}
	if m, b := f.rates(start.Add(5 * time.Second)); m != 10 || b != 100 {
		t.Fatalf("second sample: %v msg/s %v B/s, want 10 and 100", m, b)
	}
}

func TestAdminAckedRanges(t *testing.T) {
	c := ledger.NewCursorState(1)
	for _, id := range []int64{3, 4, 5, 8, 10} {
		c.Ack(id)
	}
	if got := fmt.Sprint(ackedRanges(c, 20, 1000)); got != "[[3 5] [8 8] [10 10]]" {
		t.Fatalf("ranges %s", got)
	}
	// The scan bound cuts the list short, never makes it wrong.
	if got := fmt.Sprint(ackedRanges(c, 20, 2)); got != "[[3 5]]" {
		t.Fatalf("bounded ranges %s", got)
	}
	if got := ackedRanges(ledger.NewCursorState(5), 20, 1000); got != nil {
		t.Fatalf("no ranges: %v", got)
	}
}

func TestAdminPeekSkipAndClearWithAckHoles(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish(10)
	s, _ := h.subscribe(pb.CommandSubscribe_Shared) // no permits: nothing is delivered
	h.ack(s, 2, 3, 6)
	name := h.topic.name
	for n, want := range map[int64]int64{1: 0, 3: 4, 5: 7, 7: 9} {
		m, err := h.b.PeekMessage(ctx, name, "s", n)
		if err != nil || m.ID.EntryID != want {
			t.Fatalf("peek %d: entry %d, %v; want %d", n, m.ID.EntryID, err, want)
		}
	}
	if _, err := h.b.PeekMessage(ctx, name, "s", 8); !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("peek past the end: %v", err)
	}
	// As Pulsar, a peek on a missing subscription creates it at the earliest entry.
	if m, err := h.b.PeekMessage(ctx, name, "new", 2); err != nil || m.ID.EntryID != 1 {
		t.Fatalf("peek on a missing subscription: entry %d, %v; want 1", m.ID.EntryID, err)
	}
	if _, err := h.b.subscription(ctx, name, "new"); err != nil {
		t.Fatalf("the peek did not create the subscription: %v", err)
	}
	// Skipping 3 acks 0, 1 and 4: 5, 7, 8 and 9 are left.
	if err := h.b.SkipMessages(ctx, name, "s", 3); err != nil {
		t.Fatal(err)
	}
	if md := s.markDelete(); md != 4 {
		t.Fatalf("mark-delete %d after skipping 3", md)
	}
	if n, _ := s.backlog(h.topic.ledger.LastEntryID()); n != 4 {
		t.Fatalf("backlog %d after skip, want 4", n)
	}
	if err := h.b.ClearBacklog(ctx, name, "s"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.backlog(h.topic.ledger.LastEntryID()); n != 0 {
		t.Fatalf("backlog %d after clearing", n)
	}
	st, err := h.b.TopicInternalStats(ctx, name)
	if err != nil || st.Cursors["s"].MarkDelete != 9 || st.Entries != 10 {
		t.Fatalf("internal stats %+v, %v", st, err)
	}
}

func TestAdminCreateSubscriptionPositions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish(5)
	name := h.topic.name
	lid := h.topic.ledgerID
	for sub, c := range map[string]struct {
		id   MessageID
		want int64 // mark-delete
	}{
		"at2":      {MessageID{LedgerID: lid, EntryID: 2}, 1},
		"earliest": {MessageID{LedgerID: EarliestLedgerID, EntryID: -1}, -1},
		"latest":   {MessageID{LedgerID: LatestLedgerID, EntryID: 1<<63 - 1}, 4},
		"beyond":   {MessageID{LedgerID: lid, EntryID: 99}, 4},
	} {
		if err := h.b.CreateSubscription(ctx, name, sub, c.id); err != nil {
			t.Fatal(err)
		}
		h.topic.mu.Lock()
		s := h.topic.subs[sub]
		h.topic.mu.Unlock()
		if md := s.markDelete(); md != c.want {
			t.Errorf("%s: mark-delete %d, want %d", sub, md, c.want)
		}
	}
	if err := h.b.CreateSubscription(ctx, name, "at2", MessageID{}); !errors.Is(err, ErrSubscriptionExists) {
		t.Fatalf("second create: %v", err)
	}
	subs, _ := h.b.Subscriptions(ctx, name)
	if fmt.Sprint(subs) != "[at2 beyond earliest latest]" {
		t.Fatalf("subscriptions %v", subs)
	}
	// Reset to an id, exclusive of it: the next entry is the one after.
	if err := h.b.ResetCursor(ctx, name, "at2", MessageID{LedgerID: lid, EntryID: 3}, true); err != nil {
		t.Fatal(err)
	}
	h.topic.mu.Lock()
	s := h.topic.subs["at2"]
	h.topic.mu.Unlock()
	if md := s.markDelete(); md != 3 {
		t.Fatalf("mark-delete %d after an exclusive reset to 3", md)
	}
}

func TestAdminDeleteTopicRefusesBusyUnlessForced(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish(3)
	h.subscribe(pb.CommandSubscribe_Exclusive)
	name := h.topic.name
	if err := h.b.DeleteTopic(ctx, name, false); !errors.Is(err, ErrTopicBusy) {
		t.Fatalf("delete with a consumer: %v", err)
	}
	if err := h.b.DeleteTopic(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.b.TopicExists(ctx, name); ok {
		t.Fatal("topic exists after delete")
	}
	if err := h.b.DeleteTopic(ctx, name, false); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := h.b.TopicStats(ctx, name); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("stats of a deleted topic: %v", err)
	}
}

func TestAdminTerminateRefusesProducersAndSurvivesReload(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish(3)
	name := h.topic.name
	id, err := h.b.TerminateTopic(ctx, name)
	if err != nil || id.EntryID != 2 || id.LedgerID != h.topic.ledgerID {
		t.Fatalf("terminate: %+v %v", id, err)
	}
	p := &Producer{name: "p", topic: h.topic, cn: h.cn}
	if _, err := h.topic.addProducer(p, pb.ProducerAccessMode_Shared, nil, meta.Policies{}); serverError(err) != pb.ServerError_TopicTerminatedError {
		t.Fatalf("producer on a terminated topic: %v", err)
	}
	if err := h.b.UnloadTopic(name.String()); err != nil {
		t.Fatal(err)
	}
	again, err := h.b.getTopic(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !again.terminated.Load() {
		t.Fatal("termination lost on reload")
	}
	if id2, err := h.b.TerminateTopic(ctx, name); err != nil || id2 != id {
		t.Fatalf("terminating again: %+v %v, want %+v", id2, err, id)
	}
	st, err := h.b.TopicInternalStats(ctx, name)
	if err != nil || !st.Terminated {
		t.Fatalf("internal stats %+v %v", st, err)
	}
}

func TestAdminOpsOnNonPersistentTopics(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	name, _ := naming.ParseTopic("non-persistent://public/default/np")
	if _, err := h.b.LastMessageID(ctx, name); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("last message id: %v", err)
	}
	if err := h.b.CreateTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.TopicStats(ctx, name); err != nil {
		t.Fatalf("stats: %v", err)
	}
	if err := h.b.CreateSubscription(ctx, name, "s", MessageID{}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("create subscription: %v", err)
	}
	if err := h.b.DeleteTopic(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if err := h.b.DeleteTopic(ctx, name, false); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestAdminMessageIDByTimestamp(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish(3) // publish time 1 ms
	name := h.topic.name
	id, err := h.b.MessageIDByTimestamp(ctx, name, 0)
	if err != nil || id.EntryID != 0 {
		t.Fatalf("by timestamp 0: %+v %v", id, err)
	}
	if _, err := h.b.MessageIDByTimestamp(ctx, name, 2); !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("after the last message: %v", err)
	}
	m, err := h.b.ReadMessage(ctx, name, h.topic.ledgerID, 1)
	if err != nil || m.ID.EntryID != 1 || len(m.Data) == 0 {
		t.Fatalf("read 1: %+v %v", m, err)
	}
	for _, c := range [][2]int64{{h.topic.ledgerID + 1, 0}, {h.topic.ledgerID, 3}, {h.topic.ledgerID, -1}} {
		if _, err := h.b.ReadMessage(ctx, name, c[0], c[1]); !errors.Is(err, ErrMessageNotFound) {
			t.Fatalf("read %v: %v", c, err)
		}
	}
}
