package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// keyTracker checks Key_Shared guarantees as the test receives and acks
// messages whose payload is "key/seq": a key is held (received, not acked)
// by one consumer at a time, and every consumer gets a key's messages in
// publish order starting from the first one not acked. Consumers ack in the
// order they receive, so a key's acked messages are a prefix.
type keyTracker struct {
	mu     sync.Mutex
	holder map[string]string         // key → consumer holding unacked messages of it
	held   map[string]int            // key → how many
	last   map[string]int            // key → last seq received by its holder
	acked  map[string]int            // key → seqs acked
	seenBy map[string]map[string]int // key → consumer → messages received
	closed map[string]bool
}

func newKeyTracker() *keyTracker {
	return &keyTracker{holder: map[string]string{}, held: map[string]int{}, last: map[string]int{},
		acked: map[string]int{}, seenBy: map[string]map[string]int{}, closed: map[string]bool{}}
}

func parseKeyed(t *testing.T, m pulsar.Message) (string, int) {
	t.Helper()
	key, seq, ok := strings.Cut(string(m.Payload()), "/")
	n, err := strconv.Atoi(seq)
	if !ok || err != nil || key != m.Key() {
		t.Fatalf("unexpected message %q with key %q", m.Payload(), m.Key())
	}
	return key, n
}

// received records a message; it reports false for messages of a closed
// consumer, which the broker takes back.
func (k *keyTracker) received(t *testing.T, consumer string, m pulsar.Message) bool {
	t.Helper()
	key, seq := parseKeyed(t, m)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed[consumer] {
		return false
	}
	if k.held[key] > 0 && k.holder[key] != consumer {
		t.Fatalf("%s got %s/%d while %s holds %d unacked messages of the key", consumer, key, seq, k.holder[key], k.held[key])
	}
	want := k.last[key] + 1
	if k.held[key] == 0 {
		want = k.acked[key]
	}
	if seq != want {
		t.Fatalf("%s got %s/%d, want %s/%d", consumer, key, seq, key, want)
	}
	k.holder[key], k.last[key] = consumer, seq
	k.held[key]++
	if k.seenBy[key] == nil {
		k.seenBy[key] = map[string]int{}
	}
	k.seenBy[key][consumer]++
	return true
}

func (k *keyTracker) ack(t *testing.T, c pulsar.Consumer, m pulsar.Message) {
	t.Helper()
	key, seq := parseKeyed(t, m)
	k.mu.Lock()
	if seq != k.acked[key] {
		k.mu.Unlock()
		t.Fatalf("acking %s/%d, want %s/%d", key, seq, key, k.acked[key])
	}
	k.acked[key]++
	k.held[key]--
	k.mu.Unlock()
	// Counted before the ack leaves: the broker can move the key only after.
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
}

// close forgets what a consumer held: the broker hands it to the others.
func (k *keyTracker) close(consumer string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed[consumer] = true
	for key, h := range k.holder {
		if h == consumer {
			k.held[key] = 0
		}
	}
}

func (k *keyTracker) ackedTotal() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, a := range k.acked {
		n += a
	}
	return n
}

type keyedMsg struct {
	consumer string
	c        pulsar.Consumer
	m        pulsar.Message
}

// keySharedRig is a topic with Key_Shared consumers whose messages arrive
// on one channel, so the test decides when each is acked.
type keySharedRig struct {
	t       *testing.T
	client  pulsar.Client
	topic   string
	msgs    chan keyedMsg
	stops   map[string]func()
	tracker *keyTracker
}

func newKeySharedRig(t *testing.T) *keySharedRig {
	s := startServer(t, server.Options{})
	return &keySharedRig{t: t, client: newClient(t, s.BrokerURL()), topic: uniqueTopic(t),
		msgs: make(chan keyedMsg, 1000), stops: map[string]func(){}, tracker: newKeyTracker()}
}

func (r *keySharedRig) subscribe(name string, policy *pulsar.KeySharedPolicy) (pulsar.Consumer, error) {
	c, err := r.client.Subscribe(pulsar.ConsumerOptions{Topic: r.topic, SubscriptionName: "ks", Type: pulsar.KeyShared,
		Name: name, KeySharedPolicy: policy, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return
			}
			select {
			case r.msgs <- keyedMsg{name, c, m}:
			case <-ctx.Done():
				return
			}
		}
	}()
	r.stops[name] = func() { cancel(); <-done; c.Close() }
	r.t.Cleanup(func() {
		if stop := r.stops[name]; stop != nil {
			stop()
		}
	})
	return c, nil
}

func (r *keySharedRig) mustSubscribe(name string, policy *pulsar.KeySharedPolicy) pulsar.Consumer {
	r.t.Helper()
	c, err := r.subscribe(name, policy)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// closeConsumer closes without acking what the consumer holds.
func (r *keySharedRig) closeConsumer(name string) {
	r.tracker.close(name)
	r.stops[name]()
	delete(r.stops, name)
}

// next returns the next message of a consumer still open.
func (r *keySharedRig) next() keyedMsg {
	r.t.Helper()
	for {
		select {
		case km := <-r.msgs:
			if r.tracker.received(r.t, km.consumer, km.m) {
				return km
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("no message within 10s; %d acked", r.tracker.ackedTotal())
		}
	}
}

// publish sends seqs [from, to) of every key, interleaved.
func (r *keySharedRig) publish(opts pulsar.ProducerOptions, keys []string, from, to int) {
	r.t.Helper()
	opts.Topic = r.topic
	p, err := r.client.CreateProducer(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var sendErr error
	for seq := from; seq < to; seq++ {
		for _, key := range keys {
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: fmt.Appendf(nil, "%s/%d", key, seq)},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil && sendErr == nil {
						sendErr = err
					}
				})
		}
	}
	if err := p.FlushWithCtx(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		r.t.Fatal(sendErr)
	}
}

// drain receives and acks until total messages are acked.
func (r *keySharedRig) drain(total int) {
	r.t.Helper()
	for r.tracker.ackedTotal() < total {
		km := r.next()
		r.tracker.ack(r.t, km.c, km.m)
	}
}

func keyNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}

var unbatched = pulsar.ProducerOptions{DisableBatching: true}

func TestKeySharedEachKeyOnOneConsumerInOrder(t *testing.T) {
	r := newKeySharedRig(t)
	autoSplit := &pulsar.KeySharedPolicy{Mode: pulsar.KeySharedPolicyModeAutoSplit}
	r.mustSubscribe("a", autoSplit)
	r.mustSubscribe("b", autoSplit)
	keys := keyNames("key-", 20)
	r.publish(unbatched, keys, 0, 50)
	r.drain(20 * 50)
	perConsumer := map[string]int{}
	for _, key := range keys {
		if len(r.tracker.seenBy[key]) != 1 {
			t.Fatalf("key %s went to %v", key, r.tracker.seenBy[key])
		}
		for c := range r.tracker.seenBy[key] {
			perConsumer[c]++
		}
	}
	if len(perConsumer) != 2 {
		t.Fatalf("keys per consumer: %v", perConsumer)
	}
}

func TestKeySharedStickyRanges(t *testing.T) {
	r := newKeySharedRig(t)
	low, _ := pulsar.NewKeySharedPolicySticky([]int{0, 32767})
	high, _ := pulsar.NewKeySharedPolicySticky([]int{32768, 65535})
	r.mustSubscribe("low", low)
	r.mustSubscribe("high", high)
	overlap, _ := pulsar.NewKeySharedPolicySticky([]int{30000, 40000})
	if _, err := r.subscribe("overlap", overlap); err == nil || !strings.Contains(err.Error(), "ConsumerAssignError") {
		t.Fatalf("consumer with overlapping ranges: %v", err)
	}
	if _, err := r.subscribe("auto", nil); err == nil || !strings.Contains(err.Error(), "ConsumerBusy") {
		t.Fatalf("AUTO_SPLIT consumer on a STICKY subscription: %v", err)
	}
	keys := keyNames("key-", 20)
	r.publish(unbatched, keys, 0, 5)
	r.drain(20 * 5)
	// Slots (murmur3 x86_32 & 0x7fffffff % 65536) computed with the
	// client's murmur3 library, independently of the broker.
	slots := []int{63679, 5536, 21772, 24226, 63910, 51134, 20214, 42852, 27344, 22900,
		29164, 55576, 7360, 52553, 43679, 16682, 41653, 14423, 1976, 56655}
	for i, key := range keys {
		want := "low"
		if slots[i] > 32767 {
			want = "high"
		}
		if got := r.tracker.seenBy[key]; len(got) != 1 || got[want] != 5 {
			t.Errorf("key %s (slot %d) went to %v, want %s", key, slots[i], got, want)
		}
	}
}

func TestKeySharedJoinWhileOthersHoldUnacked(t *testing.T) {
	r := newKeySharedRig(t)
	r.mustSubscribe("a", nil)
	r.mustSubscribe("b", nil)
	old := keyNames("old-", 20)
	r.publish(unbatched, old, 0, 10)
	var held []keyedMsg
	for len(held) < 200 {
		held = append(held, r.next())
	}
	r.mustSubscribe("c", nil)
	fresh := keyNames("new-", 20)
	r.publish(unbatched, old, 10, 20)
	r.publish(unbatched, fresh, 0, 10)
	// a and b ack nothing: the slots that moved to c from them wait, but c
	// must get the keys nobody holds.
	for gotC := 0; gotC == 0; {
		km := r.next()
		if km.consumer == "c" {
			// Every old key has unacked messages on a or b, so only a new
			// key can reach c now.
			if !strings.HasPrefix(km.m.Key(), "new-") {
				t.Fatalf("c got %s while its previous owner holds it", km.m.Payload())
			}
			r.tracker.ack(t, km.c, km.m)
			gotC++
		} else {
			held = append(held, km)
		}
	}
	for _, km := range held {
		r.tracker.ack(t, km.c, km.m)
	}
	r.drain(20*20 + 20*10)
	moved := 0
	for _, key := range old {
		if len(r.tracker.seenBy[key]) > 1 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no old key moved to the new consumer")
	}
}

func TestKeySharedClosedConsumerHandsKeysOver(t *testing.T) {
	r := newKeySharedRig(t)
	r.mustSubscribe("a", nil)
	r.mustSubscribe("b", nil)
	keys := keyNames("key-", 20)
	r.publish(unbatched, keys, 0, 20)
	fromA := 0
	for fromA < 30 {
		km := r.next()
		if km.consumer == "a" {
			fromA++
			if fromA > 10 {
				continue // held, never acked
			}
		}
		r.tracker.ack(t, km.c, km.m)
	}
	r.closeConsumer("a")
	r.drain(20 * 20)
	handedOver := 0
	for _, key := range keys {
		if r.tracker.seenBy[key]["a"] > 0 && r.tracker.seenBy[key]["b"] > 0 {
			handedOver++
		}
	}
	if handedOver == 0 {
		t.Fatal("no key of the closed consumer went to the other one")
	}
}

func TestKeySharedKeyBasedBatches(t *testing.T) {
	r := newKeySharedRig(t)
	r.mustSubscribe("a", nil)
	r.mustSubscribe("b", nil)
	keys := keyNames("key-", 20)
	r.publish(pulsar.ProducerOptions{BatcherBuilderType: pulsar.KeyBasedBatchBuilder,
		BatchingMaxMessages: 200, BatchingMaxPublishDelay: 50 * time.Millisecond}, keys, 0, 50)
	batched := 0
	for r.tracker.ackedTotal() < 20*50 {
		km := r.next()
		if km.m.ID().BatchSize() > 1 {
			batched++
		}
		r.tracker.ack(t, km.c, km.m)
	}
	if batched == 0 {
		t.Fatal("the producer sent no batch")
	}
	perConsumer := map[string]int{}
	for _, key := range keys {
		if len(r.tracker.seenBy[key]) != 1 {
			t.Fatalf("key %s went to %v", key, r.tracker.seenBy[key])
		}
		for c := range r.tracker.seenBy[key] {
			perConsumer[c]++
		}
	}
	if len(perConsumer) != 2 {
		t.Fatalf("keys per consumer: %v", perConsumer)
	}
}
