package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/metafault"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingStore counts ledger opens.
type countingStore struct {
	ledger.Store
	opens atomic.Int64
}

func (s *countingStore) Open(ctx context.Context, topic string) (ledger.Ledger, error) {
	s.opens.Add(1)
	return s.Store.Open(ctx, topic)
}

// faultBroker is a broker over the in-memory ledger and an embedded
// metadata store wrapped by metafault; raw writes past the faults.
type faultBroker struct {
	b      *Broker
	faults *metafault.Store
	raw    *meta.Resources
	ledger *countingStore
}

func newFaultBroker(t *testing.T, cfg Config) *faultBroker {
	t.Helper()
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	raw := &meta.Resources{Store: md}
	if err := raw.Bootstrap(context.Background(), "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	faults := metafault.ForTest(t, md)
	store := &countingStore{Store: memory.New()}
	cfg.Logger = slog.New(slog.DiscardHandler)
	b := New(cfg, store, &meta.Resources{Store: faults}, nil)
	t.Cleanup(func() {
		b.Shutdown(context.Background())
		store.Close()
	})
	return &faultBroker{b: b, faults: faults, raw: raw, ledger: store}
}

// TestConcurrentLoadsShareOneAttempt: loads of one topic that arrive while
// it loads wait for that load: one namespace read, one ledger open, one
// topic. A failed load is not kept: the next attempt reads again.
func TestConcurrentLoadsShareOneAttempt(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	ns := naming.Namespace{Tenant: "public", Name: "default"}
	nsKey := metafault.NamespacePolicies(ns)
	// Slow enough that every caller arrives while the first load runs.
	remove := fb.faults.Inject(metafault.Rule{Match: nsKey, Ops: []metafault.Op{metafault.OpGet}, Delay: 300 * time.Millisecond})
	name, _ := naming.ParseTopic("persistent://public/default/shared-load")
	const callers = 16
	topics := make([]*Topic, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tp, err := fb.b.getTopic(ctx, name)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			topics[i] = tp
		}()
	}
	wg.Wait()
	remove()
	for i, tp := range topics {
		if tp == nil || tp != topics[0] {
			t.Fatalf("caller %d got topic %p, caller 0 %p", i, tp, topics[0])
		}
	}
	if n := fb.ledger.opens.Load(); n != 1 {
		t.Fatalf("%d ledger opens for %d concurrent loads, want 1", n, callers)
	}
	if n := fb.faults.CallsMatching(metafault.OpGet, nsKey); n != 1 {
		t.Fatalf("%d reads of the namespace's policies, want 1", n)
	}

	// A failing load is retried by the next caller, not cached.
	other, _ := naming.ParseTopic("persistent://public/default/failing-load")
	remove = fb.faults.Inject(metafault.Rule{Match: metafault.TopicPolicies(other), Fail: true})
	ctx := context.Background()
	if _, err := fb.b.getTopic(ctx, other); serverError(err) != pb.ServerError_MetadataError {
		t.Fatalf("load with failing metadata: %v (code %v), want MetadataError", err, serverError(err))
	}
	remove()
	if _, err := fb.b.getTopic(ctx, other); err != nil {
		t.Fatalf("load after the store recovered: %v", err)
	}
	m := fb.b.metrics
	if n := testutil.ToFloat64(m.metadataErrors.WithLabelValues("policies")); n != 1 {
		t.Fatalf("mb_metadata_errors_total{op=policies} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.loadsInflight); n != 0 {
		t.Fatalf("mb_topic_loads_inflight = %v after the loads", n)
	}
	if n := testutil.CollectAndCount(m.loadSeconds); n != 2 {
		t.Fatalf("mb_topic_load_seconds has %d series, want ok and error", n)
	}
}

// TestLoadRacingShutdown: a load in flight when the broker shuts down
// ends, closes the ledger it opened and hands no topic out.
func TestLoadRacingShutdown(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	name, _ := naming.ParseTopic("persistent://public/default/shutdown")
	defer fb.faults.Inject(metafault.Rule{Match: metafault.TopicPolicies(name), Ops: []metafault.Op{metafault.OpGet}, Delay: time.Minute})()
	got := make(chan error, 1)
	go func() {
		_, err := fb.b.getTopic(context.Background(), name)
		got <- err
	}()
	waitFor(t, func() bool { return fb.faults.CallsMatching(metafault.OpGet, metafault.TopicPolicies(name)) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fb.b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err == nil {
		t.Fatal("a load cut short by shutdown handed out a topic")
	}
	if n := len(fb.b.Topics()); n != 0 {
		t.Fatalf("%d topics loaded after shutdown", n)
	}
}

// TestSlowLoadDoesNotBlockOtherTopics: a load stuck on one namespace's
// metadata leaves loads of other namespaces, and the broker's lock, free.
func TestSlowLoadDoesNotBlockOtherTopics(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	ctx := context.Background()
	slowNS := naming.Namespace{Tenant: "public", Name: "slow"}
	if err := fb.raw.CreateNamespace(ctx, slowNS, meta.Policies{}); err != nil {
		t.Fatal(err)
	}
	defer fb.faults.Inject(metafault.Rule{Match: metafault.NamespacePolicies(slowNS), Delay: 5 * time.Second})()
	slow, _ := naming.ParseTopic("persistent://public/slow/t")
	slowDone := make(chan error, 1)
	go func() {
		_, err := fb.b.getTopic(ctx, slow)
		slowDone <- err
	}()
	start := time.Now()
	for _, n := range []string{"a", "b", "c"} {
		name, _ := naming.ParseTopic("persistent://public/default/" + n)
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := fb.b.getTopic(qctx, name)
		cancel()
		if err != nil {
			t.Fatalf("load of %s while public/slow is slow: %v", name, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("loads in another namespace took %v", d)
	}
	// Canceling the caller's wait leaves the load going for the others.
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := fb.b.getTopic(qctx, slow)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || serverError(err) != pb.ServerError_ServiceNotReady {
		t.Fatalf("waiting past the caller's deadline: %v (code %v)", err, serverError(err))
	}
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("slow load: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("slow load never finished")
	}
}

// TestLoadRacingUnloadIsDiscarded: an unload or delete that arrives while
// the topic loads waits for the load, which then closes what it opened;
// the caller's next attempt loads the topic anew.
func TestLoadRacingUnloadIsDiscarded(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	ctx := context.Background()
	name, _ := naming.ParseTopic("persistent://public/default/racing")
	defer fb.faults.Inject(metafault.Rule{Match: metafault.TopicPolicies(name), Ops: []metafault.Op{metafault.OpGet}, Delay: 300 * time.Millisecond})()
	got := make(chan *Topic, 1)
	go func() {
		tp, err := fb.b.getTopic(ctx, name)
		if err != nil {
			t.Error(err)
		}
		got <- tp
	}()
	waitFor(t, func() bool {
		fb.b.mu.Lock()
		defer fb.b.mu.Unlock()
		return fb.b.loads[name.String()] != nil
	})
	if err := fb.b.DeleteTopic(ctx, name, true); err != nil && !errors.Is(err, ErrTopicNotFound) {
		t.Fatal(err)
	}
	tp := <-got
	if tp == nil || tp.ledger == nil {
		t.Fatal("no topic after the delete")
	}
	if _, err := tp.ledger.Read(ctx, 0, 1, 0); err != nil {
		t.Fatalf("the topic handed out has a closed ledger: %v", err)
	}
	if n := fb.ledger.opens.Load(); n != 2 {
		t.Fatalf("%d ledger opens, want 2 (the discarded load and the new one)", n)
	}
}

// TestEnforcementSkipsRoundOnMetadataError: while the policies cannot be
// read, a round of TTL, backlog quota and retention does nothing (no cursor
// moves, no data is trimmed, even though the broker's default retention
// would trim what was consumed); once the store recovers, the next round
// applies the policies.
func TestEnforcementSkipsRoundOnMetadataError(t *testing.T) {
	fb := newFaultBroker(t, Config{PolicyCheckInterval: time.Hour, DefaultRetentionMinutes: 0, DefaultRetentionSizeMB: 0})
	ctx := context.Background()
	h := harnessOn(t, fb.b, "persistent://public/default/enforce")
	h.publish(10)
	s, _ := h.subscribe(pb.CommandSubscribe_Shared)
	h.ack(s, 0, 1, 2, 3, 4)
	ns := h.topic.name.Namespace
	// Fail reads from now on, then change the policies past the faults:
	// the change drops the cached policies, so the next round must read.
	fb.faults.Inject(metafault.Rule{Match: metafault.NamespacePolicies(ns), Ops: []metafault.Op{metafault.OpGet}, Fail: true})
	changed := fb.b.policies.Subscribe()
	ttl, limit := 1, int64(1)
	err := fb.raw.UpdateNamespace(ctx, ns, func(p *meta.Policies) error {
		p.MessageTTLInSeconds = &ttl
		p.Retention = &meta.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}
		p.BacklogQuotaMap = map[string]meta.BacklogQuota{meta.BacklogQuotaDestinationStorage: {LimitSize: limit, Policy: meta.BacklogPolicyConsumerBacklogEviction}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the policy change never reached the cache")
	}
	h.topic.enforcePolicies(time.Now())
	if md, first := s.markDelete(), h.topic.ledger.FirstEntryID(); md != 4 || first != 0 {
		t.Fatalf("after a round with unreadable policies: mark-delete %d, first entry %d; want 4 and 0 (nothing done)", md, first)
	}
	if n := testutil.ToFloat64(fb.b.metrics.enforcementSkips); n != 1 {
		t.Fatalf("mb_policy_enforcement_skipped_total = %v, want 1", n)
	}
	fb.faults.Heal()
	// The next rounds apply the policies. Not necessarily the very next:
	// the cache may still be re-reading in the background when the store
	// comes back (seen under load in CI).
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.topic.enforcePolicies(time.Now())
		md, first := s.markDelete(), h.topic.ledger.FirstEntryID()
		if md == 9 && first == 0 {
			break
		}
		if time.Now().After(deadline) || first != 0 {
			t.Fatalf("after the store recovered: mark-delete %d, first entry %d; want 9 (TTL expired all) and 0 (retention unlimited)", md, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProducerPolicyReadFailureIsRetriable: a producer whose topic's
// policies cannot be read is refused with MetadataError (retriable), and the same
// request succeeds once the store is back.
func TestProducerPolicyReadFailureIsRetriable(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	cn := testConn(t, fb.b)
	name, _ := naming.ParseTopic("persistent://public/default/flaky")
	remove := fb.faults.Inject(metafault.Rule{Match: metafault.TopicPolicies(name), Fail: true})
	ctx := context.Background()
	cmd := &pb.CommandProducer{Topic: ptr(name.String()), ProducerId: ptr(uint64(1)), RequestId: ptr(uint64(1))}
	if _, _, err := cn.createProducer(ctx, name, cmd); serverError(err) != pb.ServerError_MetadataError {
		t.Fatalf("producer with unreadable policies: %v (code %v), want MetadataError", err, serverError(err))
	}
	remove()
	if _, _, err := cn.createProducer(ctx, name, cmd); err != nil {
		t.Fatalf("producer after the store recovered: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// testConn is a connection object with no socket, for calling handlers.
func testConn(t testing.TB, b *Broker) *conn {
	cn := &conn{b: b, log: b.log, producers: map[uint64]*Producer{}, consumers: map[uint64]*Consumer{},
		creatingProducers: map[uint64]bool{}, creatingConsumers: map[uint64]bool{},
		wsignal: make(chan struct{}, 1), closed: make(chan struct{})}
	cn.ctx, cn.cancel = context.WithCancel(b.ctx)
	t.Cleanup(cn.cancel)
	return cn
}

// harnessOn is newHarness on a given broker and topic.
func harnessOn(t *testing.T, b *Broker, topic string) *harness {
	t.Helper()
	name, _ := naming.ParseTopic(topic)
	tp, err := b.getTopic(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, b: b, topic: tp, cn: testConn(t, b)}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
