package broker

import (
	"context"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestSubscriptionExpiration(t *testing.T) {
	h := newHarness(t)
	s, c := h.subscribe(pb.CommandSubscribe_Exclusive)
	ctx := context.Background()
	minutes := 10
	p := meta.Policies{SubscriptionExpirationTimeMinutes: &minutes}
	later := time.Now().Add(11 * time.Minute)

	// With a consumer attached it is kept however old.
	h.topic.expireSubscriptions(ctx, p, later)
	if h.topic.subs["s"] == nil {
		t.Fatal("a subscription with a consumer expired")
	}
	s.removeConsumer(c)
	// Idle for less than the policy: kept.
	h.topic.expireSubscriptions(ctx, p, time.Now().Add(9*time.Minute))
	if h.topic.subs["s"] == nil {
		t.Fatal("expired before its time")
	}
	// Policy off (0): kept.
	zero := 0
	h.topic.expireSubscriptions(ctx, meta.Policies{SubscriptionExpirationTimeMinutes: &zero}, later)
	if h.topic.subs["s"] == nil {
		t.Fatal("expired with the policy off")
	}
	h.topic.expireSubscriptions(ctx, p, later)
	if h.topic.subs["s"] != nil {
		t.Fatal("idle subscription not expired")
	}
}

func TestUnackedLimitReleasedOnRedelivery(t *testing.T) {
	h := newHarness(t)
	h.publish(10)
	s, c := h.subscribe(pb.CommandSubscribe_Shared)
	four := 4
	s.mu.Lock()
	s.setUnackedLimits(c, meta.Policies{MaxUnackedMessagesPerConsumer: &four})
	s.mu.Unlock()
	s.flow(c, 100)
	h.receive(4)
	s.mu.Lock()
	blocked, unacked := c.unackedBlocked, c.unacked
	s.mu.Unlock()
	if !blocked || unacked != 4 {
		t.Fatalf("after 4 deliveries: blocked %v unacked %d", blocked, unacked)
	}
	// Asking for redelivery returns them all: the count drops and dispatch resumes.
	s.redeliver(c, nil)
	got := h.receive(4)
	if got[0].redeliveries != 1 {
		t.Fatalf("expected redeliveries first, got %+v", got)
	}
}
