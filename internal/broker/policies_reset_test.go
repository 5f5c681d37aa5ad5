package broker

import (
	"context"
	"log/slog"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// scriptedWatchStore is a store whose watch delivers only the events the
// test sends, as a watch that missed changes does.
type scriptedWatchStore struct {
	*meta.Embedded
	events chan meta.Event
}

func (s *scriptedWatchStore) Watch(ctx context.Context, _ string) <-chan meta.Event {
	out := make(chan meta.Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-s.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// TestPolicyCacheReReadsOnReset: a policy changed while the watch missed
// it stays cached until the watch resets, and is read again after.
func TestPolicyCacheReReadsOnReset(t *testing.T) {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	store := &scriptedWatchStore{Embedded: md, events: make(chan meta.Event)}
	res := &meta.Resources{Store: store}
	ctx := context.Background()
	if err := res.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	ledgers := memory.New()
	b := New(Config{Logger: slog.New(slog.DiscardHandler)}, ledgers, res, nil)
	t.Cleanup(func() {
		b.Shutdown(context.Background())
		ledgers.Close()
	})
	topic, _ := naming.ParseTopic("persistent://public/default/t")
	if p, err := b.EffectivePolicies(ctx, topic); err != nil || p.MaxProducersPerTopic != nil {
		t.Fatalf("max producers before: %v %v", p.MaxProducersPerTopic, err)
	}
	two := 2
	// Another process changes the policy: a write past this broker's
	// Resources, which only the watch would tell it about.
	other := &meta.Resources{Store: md}
	if err := other.UpdateNamespace(ctx, topic.Namespace, func(p *meta.Policies) error { p.MaxProducersPerTopic = &two; return nil }); err != nil {
		t.Fatal(err)
	}
	if p, _ := b.EffectivePolicies(ctx, topic); p.MaxProducersPerTopic != nil {
		t.Fatal("the cache was refreshed without an event: the test proves nothing")
	}
	// Events are handed over unbuffered at each step (store watch, policy
	// watch, cache): once the fourth is taken, the cache has received the
	// second, so it has handled the reset.
	store.events <- meta.Event{Type: meta.EventReset, Revision: 10}
	for rev := range int64(3) {
		store.events <- meta.Event{Type: meta.EventPut, KV: meta.KV{Key: "/admin/policies/no-such-tenant"}, Revision: 11 + rev}
	}
	if p, err := b.EffectivePolicies(ctx, topic); err != nil || p.MaxProducersPerTopic == nil || *p.MaxProducersPerTopic != 2 {
		t.Fatalf("max producers after the reset: %v %v, want 2", p.MaxProducersPerTopic, err)
	}
}
