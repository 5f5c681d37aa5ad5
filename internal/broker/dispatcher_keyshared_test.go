package broker

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

func TestKeySlotVectors(t *testing.T) {
	// Values of github.com/spaolacci/murmur3.Sum32 (what pulsar-client-go
	// uses) and of Pulsar's slot rule for the same keys.
	for _, v := range []struct {
		key  string
		hash uint32
		slot uint16
	}{
		{"", 0x00000000, 1}, // slot 0 is reserved
		{"a", 0x3c2569b2, 27058},
		{"ab", 0x9bbfd75f, 55135},
		{"abc", 0xb3dd93fa, 37882},
		{"abcd", 0x43ed676a, 26474},
		{"hello", 0x248bfa47, 64071},
		{"NONE_KEY", 0x9e15bea3, 48803},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723, 63267},
		{"key-0", 0xe337f8bf, 63679}, // sign bit set: cleared before the modulo
		{"key-1", 0x98b115a0, 5536},
	} {
		if got := murmur3x86([]byte(v.key)); got != v.hash {
			t.Errorf("murmur3(%q) = %#08x, want %#08x", v.key, got, v.hash)
		}
		if got := keySlot([]byte(v.key)); got != v.slot {
			t.Errorf("slot(%q) = %d, want %d", v.key, got, v.slot)
		}
	}
}

func TestStickyKeyChoice(t *testing.T) {
	for _, v := range []struct {
		name string
		md   wire.MetadataInfo
		want uint16
	}{
		{"ordering key first", wire.MetadataInfo{OrderingKey: []byte("a"), PartitionKey: []byte("ab")}, 27058},
		{"partition key", wire.MetadataInfo{PartitionKey: []byte("ab")}, 55135},
		{"base64 partition key", wire.MetadataInfo{PartitionKey: []byte("a2V5LTA="), PartitionKeyB64: true}, 63679},
		{"no key", wire.MetadataInfo{}, 48803},
	} {
		if got := stickyKeyHash(&v.md); got != v.want {
			t.Errorf("%s: slot %d, want %d", v.name, got, v.want)
		}
	}
}

// owners returns the owner of every slot.
func owners(d *keySharedDispatcher) []*Consumer {
	out := make([]*Consumer, keySharedSlots)
	for h := 0; h < keySharedSlots; h++ {
		out[h] = d.owner(uint16(h))
	}
	return out
}

func share(os []*Consumer, c *Consumer) float64 {
	n := 0
	for _, o := range os {
		if o == c {
			n++
		}
	}
	return float64(n) / keySharedSlots
}

func TestKeySharedAutoSplitSpreadsAndMovesLittle(t *testing.T) {
	d := newKeySharedDispatcher(nil)
	cs := []*Consumer{{id: 1, name: "c0"}, {id: 2, name: "c1"}, {id: 3, name: "c2"}}
	for _, c := range cs {
		if err := d.add(c); err != nil {
			t.Fatal(err)
		}
	}
	before := owners(d)
	for _, c := range cs {
		if s := share(before, c); s < 0.15 {
			t.Errorf("%s owns %.2f of the slots", c.name, s)
		}
	}
	joined := &Consumer{id: 4, name: "c3"}
	d.add(joined)
	after := owners(d)
	moved := 0
	for h := range after {
		if after[h] != before[h] {
			moved++
			if after[h] != joined {
				t.Fatalf("slot %d moved from %s to %s, not to the joining consumer", h, before[h].name, after[h].name)
			}
		}
	}
	if f := float64(moved) / keySharedSlots; f < 0.1 || f > 0.4 {
		t.Fatalf("%.2f of the slots moved when a fourth consumer joined", f)
	}
	d.remove(joined)
	if !slices.Equal(owners(d), before) {
		t.Fatal("slots did not go back when the consumer left")
	}
}

func TestKeySharedAutoSplitSameNames(t *testing.T) {
	// Consumers without a name (or with the same one) still get their own points.
	d := newKeySharedDispatcher(nil)
	a, b := &Consumer{id: 1}, &Consumer{id: 2}
	d.add(a)
	d.add(b)
	os := owners(d)
	if share(os, a) < 0.2 || share(os, b) < 0.2 {
		t.Fatalf("shares %.2f and %.2f", share(os, a), share(os, b))
	}
}

func stickyMeta(ranges ...int32) *pb.KeySharedMeta {
	m := &pb.KeySharedMeta{KeySharedMode: pb.KeySharedMode_STICKY.Enum()}
	for i := 0; i+1 < len(ranges); i += 2 {
		m.HashRanges = append(m.HashRanges, &pb.IntRange{Start: proto.Int32(ranges[i]), End: proto.Int32(ranges[i+1])})
	}
	return m
}

func TestKeySharedStickyRanges(t *testing.T) {
	d := newKeySharedDispatcher(nil)
	a := &Consumer{id: 1, name: "a", keyShared: stickyMeta(0, 1000, 5000, 6000)}
	b := &Consumer{id: 2, name: "b", keyShared: stickyMeta(1001, 4999)}
	for _, c := range []*Consumer{a, b} {
		if err := d.add(c); err != nil {
			t.Fatal(err)
		}
	}
	for h, want := range map[uint16]*Consumer{1: a, 1000: a, 1001: b, 4999: b, 5000: a, 6000: a, 6001: nil, 65535: nil} {
		if got := d.owner(h); got != want {
			t.Errorf("slot %d owned by %v, want %v", h, got, want)
		}
	}
	c := &Consumer{id: 3, name: "c", keyShared: stickyMeta(4000, 4500)}
	err := d.add(c)
	if serverError(err) != pb.ServerError_ConsumerAssignError || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("overlapping range: %v", err)
	}
	for _, bad := range []*pb.KeySharedMeta{stickyMeta(), stickyMeta(10, 5), stickyMeta(60000, 65536),
		stickyMeta(-1, 3), stickyMeta(7000, 8000, 7500, 9000)} {
		if err := d.add(&Consumer{id: 9, keyShared: bad}); serverError(err) != pb.ServerError_ConsumerAssignError {
			t.Errorf("ranges %v: %v", bad.GetHashRanges(), err)
		}
	}
	if len(d.consumers()) != 2 {
		t.Fatalf("%d consumers after refusals", len(d.consumers()))
	}
	d.remove(b)
	if err := d.add(c); err != nil {
		t.Fatalf("range freed by a leaving consumer: %v", err)
	}
	if d.owner(4200) != c || d.owner(3000) != nil {
		t.Fatal("ranges not updated")
	}
}

func TestKeySharedModeMismatchRefused(t *testing.T) {
	d := newKeySharedDispatcher(nil)
	if err := d.add(&Consumer{id: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.add(&Consumer{id: 2, keyShared: stickyMeta(0, 100)}); serverError(err) != pb.ServerError_ConsumerBusy {
		t.Fatalf("STICKY on AUTO_SPLIT: %v", err)
	}
	ooo := &pb.KeySharedMeta{KeySharedMode: pb.KeySharedMode_AUTO_SPLIT.Enum(), AllowOutOfOrderDelivery: proto.Bool(true)}
	if err := d.add(&Consumer{id: 3, keyShared: ooo}); serverError(err) != pb.ServerError_ConsumerBusy {
		t.Fatalf("out-of-order on in-order: %v", err)
	}
	explicit := &pb.KeySharedMeta{KeySharedMode: pb.KeySharedMode_AUTO_SPLIT.Enum()}
	if err := d.add(&Consumer{id: 4, keyShared: explicit}); err != nil {
		t.Fatalf("explicit AUTO_SPLIT next to the default: %v", err)
	}

	d = newKeySharedDispatcher(nil)
	first := &Consumer{id: 1, keyShared: stickyMeta(0, 100)}
	d.add(first)
	if err := d.add(&Consumer{id: 2}); serverError(err) != pb.ServerError_ConsumerBusy {
		t.Fatalf("AUTO_SPLIT on STICKY: %v", err)
	}
	d.remove(first)
	if err := d.add(&Consumer{id: 2}); err != nil {
		t.Fatalf("a subscription left by all its consumers takes a new mode: %v", err)
	}
}

func TestKeySharedPermits(t *testing.T) {
	d := newKeySharedDispatcher(nil)
	a, b := &Consumer{id: 1, name: "a"}, &Consumer{id: 2, name: "b"}
	d.add(a)
	d.add(b)
	// Find a key of each consumer.
	keyOf := map[*Consumer]string{}
	for i := 0; len(keyOf) < 2; i++ {
		k := fmt.Sprint("k", i)
		keyOf[d.owner(keySlot([]byte(k)))] = k
	}
	md := func(c *Consumer) *wire.MetadataInfo { return &wire.MetadataInfo{PartitionKey: []byte(keyOf[c])} }
	if c, blocked := d.next(0, md(a)); c != nil || blocked {
		t.Fatal("without any permits the loop must stop, not park the entry")
	}
	b.permits = 1
	if c, blocked := d.next(0, md(a)); c != nil || !blocked {
		t.Fatal("a key whose owner has no permits must wait alone")
	}
	if c, blocked := d.next(1, md(b)); c != b || blocked {
		t.Fatal("another consumer's key must go on")
	}
}

// ksHarness drives a Key_Shared subscription step by step: the test calls
// dispatch itself instead of the subscription's goroutine, so every state
// between two steps can be checked.
type ksHarness struct {
	*harness
	s      *Subscription
	keys   map[int64]string
	nextID uint64
}

func newKSHarness(t *testing.T, batchEntries int) *ksHarness {
	h := newHarness(t)
	h.b.cfg.DispatchBatchEntries = batchEntries
	s, _ := h.topic.getOrCreateSubscription("ks", 0, func() *Subscription {
		return newSubscription(h.topic, "ks", true, initialCursor(h.topic, &pb.CommandSubscribe{
			InitialPosition: pb.CommandSubscribe_Earliest.Enum()}))
	})
	// Marked running, attach starts no goroutine; unmarked before the
	// broker shuts down (cleanups run last-in first), stop waits for none.
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	})
	return &ksHarness{harness: h, s: s, keys: map[int64]string{}}
}

func (k *ksHarness) disp() *keySharedDispatcher { return k.s.disp.(*keySharedDispatcher) }

func (k *ksHarness) subscribe(name string, meta *pb.KeySharedMeta) (*Consumer, error) {
	k.nextID++
	c := &Consumer{id: k.nextID, name: name, sub: k.s, cn: k.cn, keyShared: meta}
	if err := k.s.attach(c, pb.CommandSubscribe_Key_Shared); err != nil {
		return nil, err
	}
	return c, nil
}

func (k *ksHarness) mustSubscribe(name string, meta *pb.KeySharedMeta) *Consumer {
	k.t.Helper()
	c, err := k.subscribe(name, meta)
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

// publish appends one entry per key; a key starting with "o:" is sent as
// ordering key, others as partition key.
func (k *ksHarness) publish(keys ...string) []int64 {
	k.t.Helper()
	var ids []int64
	for _, key := range keys {
		md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(uint64(len(k.keys))),
			PublishTime: proto.Uint64(1)}
		if o, ok := strings.CutPrefix(key, "o:"); ok {
			md.OrderingKey = []byte(o)
		} else {
			md.PartitionKey = proto.String(key)
		}
		done := make(chan int64, 1)
		k.topic.ledger.Append(wire.BuildPayload(md, []byte(key)), func(id int64, err error) {
			if err != nil {
				k.t.Error(err)
			}
			done <- id
		})
		id := <-done
		k.keys[id] = strings.TrimPrefix(key, "o:")
		ids = append(ids, id)
	}
	return ids
}

type ksDelivery struct {
	consumer uint64
	entry    int64
}

// step runs the dispatch loop until it waits and returns what it sent.
func (k *ksHarness) step() []ksDelivery {
	k.s.dispatch()
	k.cn.wmu.Lock()
	buf := k.cn.wbuf
	k.cn.wbuf = nil
	k.cn.wmu.Unlock()
	var out []ksDelivery
	r := wire.NewReader(bytes.NewReader(buf), 1<<20)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			break
		}
		cmd, _ := f.Command()
		if m := cmd.GetMessage(); m != nil {
			out = append(out, ksDelivery{m.GetConsumerId(), int64(m.GetMessageId().GetEntryId())})
		}
	}
	return out
}

func (k *ksHarness) ownerOf(key string) *Consumer {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	return k.disp().owner(keySlot([]byte(key)))
}

func byConsumer(ds []ksDelivery) map[uint64][]int64 {
	out := map[uint64][]int64{}
	for _, d := range ds {
		out[d.consumer] = append(out[d.consumer], d.entry)
	}
	return out
}

func TestKeySharedDrainingBlocksOnlyMovedHashes(t *testing.T) {
	k := newKSHarness(t, 256)
	a := k.mustSubscribe("a", nil)
	var keys []string
	for i := 0; i < 40; i++ {
		keys = append(keys, fmt.Sprint("key-", i))
	}
	first := k.publish(keys...)
	k.s.flow(a, 1000)
	if got := k.step(); len(got) != len(keys) {
		t.Fatalf("a got %d entries", len(got))
	}
	b := k.mustSubscribe("b", nil)
	var moved, stayed []int
	for i, key := range keys {
		if k.ownerOf(key) == b {
			moved = append(moved, i)
		} else {
			stayed = append(stayed, i)
		}
	}
	if len(moved) < 2 || len(stayed) == 0 {
		t.Fatalf("moved %v stayed %v", moved, stayed)
	}
	// A key b owns that nobody holds: not blocked by anything.
	fresh := ""
	for i := 0; fresh == ""; i++ {
		if key := fmt.Sprint("fresh-", i); k.ownerOf(key) == b {
			fresh = key
		}
	}
	second := k.publish(keys...)
	freshID := k.publish(fresh)[0]
	k.s.flow(b, 1000)
	got := byConsumer(k.step())
	var wantA []int64
	for _, i := range stayed {
		wantA = append(wantA, second[i])
	}
	if !slices.Equal(got[a.id], wantA) || !slices.Equal(got[b.id], []int64{freshID}) {
		t.Fatalf("a got %v (want %v), b got %v (want [%d])", got[a.id], wantA, got[b.id], freshID)
	}

	// a acks the first moved key: only that key goes to b.
	drained := moved[0]
	drainWake(k.s)
	k.ack(k.s, first[drained])
	if !woken(k.s) {
		t.Fatal("draining finished without waking the dispatch loop")
	}
	if got := k.step(); len(got) != 1 || got[0] != (ksDelivery{b.id, second[drained]}) {
		t.Fatalf("after the ack: %v, want entry %d to b", got, second[drained])
	}
	// a hands everything back: b gets its moved keys in order, a its own again.
	k.s.redeliver(a, nil)
	got = byConsumer(k.step())
	var wantB []int64
	for _, i := range moved[1:] {
		wantB = append(wantB, first[i], second[i])
	}
	slices.Sort(wantB)
	gotB := got[b.id]
	for _, i := range moved[1:] {
		if x, y := slices.Index(gotB, first[i]), slices.Index(gotB, second[i]); x < 0 || y < x {
			t.Fatalf("key %s out of order on b: %v", keys[i], gotB)
		}
	}
	slices.Sort(gotB)
	if !slices.Equal(gotB, wantB) {
		t.Fatalf("b got %v, want %v", gotB, wantB)
	}
	if len(got[a.id]) != 2*len(stayed) {
		t.Fatalf("a got back %v", got[a.id])
	}
}

func drainWake(s *Subscription) {
	select {
	case <-s.wake:
	default:
	}
}

func woken(s *Subscription) bool {
	select {
	case <-s.wake:
		return true
	default:
		return false
	}
}

func TestKeySharedOutOfOrderSkipsDraining(t *testing.T) {
	k := newKSHarness(t, 256)
	meta := &pb.KeySharedMeta{KeySharedMode: pb.KeySharedMode_AUTO_SPLIT.Enum(), AllowOutOfOrderDelivery: proto.Bool(true)}
	a := k.mustSubscribe("a", meta)
	var keys []string
	for i := 0; i < 40; i++ {
		keys = append(keys, fmt.Sprint("key-", i))
	}
	k.publish(keys...)
	k.s.flow(a, 1000)
	k.step()
	b := k.mustSubscribe("b", meta)
	moved := 0
	for _, key := range keys {
		if k.ownerOf(key) == b {
			moved++
		}
	}
	k.publish(keys...)
	k.s.flow(b, 1000)
	if got := byConsumer(k.step()); len(got[b.id]) != moved || moved == 0 {
		t.Fatalf("b got %v, want its %d keys at once", got[b.id], moved)
	}
}

func TestKeySharedStickyHoleHeldUntilOwnerJoins(t *testing.T) {
	k := newKSHarness(t, 256)
	lo := k.mustSubscribe("lo", stickyMeta(0, 32767))
	// key-1 (5536) and key-2 (21772) are low, key-0 (63679) and key-4 (63910) high.
	ids := k.publish("key-0", "key-1", "key-0", "key-2", "key-4")
	k.s.flow(lo, 100)
	if got := byConsumer(k.step()); !slices.Equal(got[lo.id], []int64{ids[1], ids[3]}) {
		t.Fatalf("lo got %v", got[lo.id])
	}
	later := k.publish("key-0")
	hi := k.mustSubscribe("hi", stickyMeta(32768, 65535))
	k.s.flow(hi, 100)
	if got := byConsumer(k.step()); !slices.Equal(got[hi.id], []int64{ids[0], ids[2], ids[4], later[0]}) {
		t.Fatalf("hi got %v", got[hi.id])
	}
}

func TestKeySharedReplayDoesNotHideDeliverableKeys(t *testing.T) {
	// With a replay window of 2 entries, a head of the queue stuck on a
	// consumer without permits must not hold back another consumer's keys
	// parked behind it.
	k := newKSHarness(t, 2)
	a := k.mustSubscribe("a", stickyMeta(0, 10000))     // key-1 (5536)
	c := k.mustSubscribe("c", stickyMeta(10001, 32767)) // key-2 (21772)
	b := k.mustSubscribe("b", stickyMeta(32768, 65535)) // key-0 (63679)
	k.s.flow(c, 100)                                    // keeps the loop reading while a and b have no permits
	ids := k.publish("key-1", "key-1", "key-1", "key-0", "key-0", "key-2")
	if got := k.step(); len(got) != 1 || got[0] != (ksDelivery{c.id, ids[5]}) {
		t.Fatalf("first round: %v", got)
	}
	if !slices.Equal(k.s.replay, ids[:5]) {
		t.Fatalf("replay %v, want %v", k.s.replay, ids[:5])
	}
	k.s.flow(b, 5)
	if got := byConsumer(k.step()); !slices.Equal(got[b.id], ids[3:5]) || len(got) != 1 {
		t.Fatalf("b got %v, want %v", got, ids[3:5])
	}
	k.s.flow(a, 5)
	if got := byConsumer(k.step()); !slices.Equal(got[a.id], ids[:3]) {
		t.Fatalf("a got %v, want %v", got[a.id], ids[:3])
	}
}

func TestKeySharedConsumerLeavingReplaysInOrder(t *testing.T) {
	// Entries handed back by a leaving consumer are older than new entries of
	// the same key, even when the replay queue is longer than a round.
	k := newKSHarness(t, 3)
	a := k.mustSubscribe("a", nil)
	b := k.mustSubscribe("b", nil)
	var keyA string
	for i := 0; keyA == ""; i++ {
		if key := fmt.Sprint("key-", i); k.ownerOf(key) == a {
			keyA = key
		}
	}
	old := k.publish(keyA, keyA, keyA, keyA, keyA, keyA, keyA)
	k.s.flow(a, 100)
	if got := k.step(); len(got) != len(old) {
		t.Fatalf("a got %v", got)
	}
	k.s.removeConsumer(a)
	fresh := k.publish(keyA, keyA)
	k.s.flow(b, 100)
	got := byConsumer(k.step())
	if want := append(slices.Clone(old), fresh...); !slices.Equal(got[b.id], want) {
		t.Fatalf("b got %v, want %v", got[b.id], want)
	}
}

// TestKeySharedModel runs random operations against the real subscription
// and checks, after every step, that (1) an entry goes to a consumer only
// when every older entry of its slot is acked or held by that consumer, (2)
// no two consumers hold unacked entries of one slot, (3) nothing
// deliverable is withheld and the loop was woken when something became
// deliverable, and (4) in the end every entry is delivered and acked.
func TestKeySharedModel(t *testing.T) {
	for _, sticky := range []bool{false, true} {
		for seed := int64(1); seed <= 15; seed++ {
			t.Run(fmt.Sprintf("%s/%d", modeName(sticky), seed), func(t *testing.T) {
				runKeySharedModel(t, rand.New(rand.NewSource(seed)), sticky)
			})
		}
	}
}

func runKeySharedModel(t *testing.T, rng *rand.Rand, sticky bool) {
	k := newKSHarness(t, 1+rng.Intn(4))
	quarters := [][2]int32{{0, 16383}, {16384, 32767}, {32768, 49151}, {49152, 65535}}
	var (
		cs      []*Consumer
		quarter = map[*Consumer]int{}
		pending = map[int64]*Consumer{}
		acked   = map[int64]bool{}
		slotOf  = map[int64]uint16{}
		ids     []int64
	)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6"}
	freeQuarter := func() int {
		for q := range quarters {
			if !slices.ContainsFunc(cs, func(c *Consumer) bool { return quarter[c] == q }) {
				return q
			}
		}
		return -1
	}
	addConsumer := func() {
		if !sticky {
			names := []string{"a", "b", "c", ""}
			cs = append(cs, k.mustSubscribe(names[rng.Intn(len(names))], nil))
			return
		}
		q := freeQuarter()
		if q < 0 {
			return
		}
		if len(cs) > 0 && rng.Intn(4) == 0 {
			taken := quarters[quarter[cs[0]]]
			if _, err := k.subscribe("x", stickyMeta(taken[0], taken[1])); serverError(err) != pb.ServerError_ConsumerAssignError {
				t.Fatalf("overlapping range accepted: %v", err)
			}
		}
		c := k.mustSubscribe(fmt.Sprint("q", q), stickyMeta(quarters[q][0], quarters[q][1]))
		quarter[c] = q
		cs = append(cs, c)
	}
	pendingOf := func(c *Consumer) []int64 {
		var out []int64
		for id, p := range pending {
			if p == c {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	mids := func(list []int64) []*pb.MessageIdData {
		var out []*pb.MessageIdData
		for _, id := range list {
			out = append(out, &pb.MessageIdData{LedgerId: proto.Uint64(uint64(k.topic.ledgerID)), EntryId: proto.Uint64(uint64(id))})
		}
		return out
	}
	consumerByID := func(id uint64) *Consumer {
		for _, c := range cs {
			if c.id == id {
				return c
			}
		}
		return nil
	}
	// check applies the deliveries of a step to the model and verifies it.
	check := func(op string, wake bool, ds []ksDelivery) {
		t.Helper()
		for _, dl := range ds {
			c := consumerByID(dl.consumer)
			if c == nil {
				t.Fatalf("%s: entry %d went to detached consumer %d", op, dl.entry, dl.consumer)
			}
			if acked[dl.entry] || pending[dl.entry] != nil {
				t.Fatalf("%s: entry %d delivered while acked or pending", op, dl.entry)
			}
			h := slotOf[dl.entry]
			for _, o := range ids {
				if slotOf[o] != h || acked[o] || o == dl.entry {
					continue
				}
				if p := pending[o]; (o < dl.entry && p != c) || (p != nil && p != c) {
					t.Fatalf("%s: entry %d (slot %d) went to %d while entry %d is held by %v", op, dl.entry, h, c.id, o, p)
				}
			}
			pending[dl.entry] = c
		}
		if len(ds) > 0 && !wake {
			t.Fatalf("%s made %d entries deliverable without waking the dispatch loop", op, len(ds))
		}
		k.s.mu.Lock()
		defer k.s.mu.Unlock()
		d := k.disp()
		// Nothing deliverable is left behind.
		waiting := map[uint16]bool{}
		for _, id := range ids {
			if acked[id] || pending[id] != nil {
				continue
			}
			h := slotOf[id]
			if waiting[h] {
				continue
			}
			waiting[h] = true
			o := d.owner(h)
			if o == nil || o.permits <= 0 {
				continue
			}
			draining := false
			for p, c := range pending {
				draining = draining || (slotOf[p] == h && c != o)
			}
			if !draining {
				t.Fatalf("%s: entry %d (slot %d) deliverable to %d with %d permits but withheld", op, id, h, o.id, o.permits)
			}
		}
		// The dispatcher's counts match the model.
		counts := map[uint16]map[*Consumer]int{}
		for id, c := range pending {
			if counts[slotOf[id]] == nil {
				counts[slotOf[id]] = map[*Consumer]int{}
			}
			counts[slotOf[id]][c]++
		}
		for h, st := range d.hashes {
			for _, hd := range st.holders {
				if counts[h][hd.c] != hd.n {
					t.Fatalf("%s: slot %d: dispatcher counts %d on %d, model %d", op, h, hd.n, hd.c.id, counts[h][hd.c])
				}
				delete(counts[h], hd.c)
			}
		}
		for h, m := range counts {
			if len(m) > 0 {
				t.Fatalf("%s: slot %d: dispatcher misses holders %v", op, h, m)
			}
		}
	}
	run := func(op string, signals bool, f func()) {
		drainWake(k.s)
		f()
		check(op, !signals || woken(k.s), k.step())
	}

	addConsumer()
	for i := 0; i < 300; i++ {
		switch r := rng.Intn(10); {
		case r < 3:
			n := 1 + rng.Intn(4)
			var batch []string
			for j := 0; j < n; j++ {
				key := keys[rng.Intn(len(keys))]
				if rng.Intn(2) == 0 {
					key = "o:" + key
				}
				batch = append(batch, key)
			}
			run("publish", false, func() {
				for _, id := range k.publish(batch...) {
					ids = append(ids, id)
					slotOf[id] = keySlot([]byte(k.keys[id]))
				}
			})
		case r == 3 && len(cs) < 4:
			run("add", false, addConsumer)
		case r == 4 && len(cs) > 0:
			c := cs[rng.Intn(len(cs))]
			run("remove", true, func() {
				k.s.removeConsumer(c)
				cs = slices.DeleteFunc(cs, func(x *Consumer) bool { return x == c })
				for _, id := range pendingOf(c) {
					delete(pending, id)
				}
			})
		case r == 5 && len(cs) > 0:
			c := cs[rng.Intn(len(cs))]
			list := pendingOf(c)
			if rng.Intn(2) == 0 && len(list) > 0 {
				list = list[:1+rng.Intn(len(list))]
			}
			run("redeliver", true, func() {
				if rng.Intn(2) == 0 {
					k.s.redeliver(c, nil)
					list = pendingOf(c)
				} else {
					k.s.redeliver(c, mids(list))
				}
				for _, id := range list {
					delete(pending, id)
				}
			})
		case r < 8 && len(cs) > 0:
			c := cs[rng.Intn(len(cs))]
			run("flow", true, func() { k.s.flow(c, uint32(1+rng.Intn(4))) })
		case len(cs) > 0:
			list := pendingOf(cs[rng.Intn(len(cs))])
			rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
			list = list[:rng.Intn(len(list)+1)]
			run("ack", true, func() {
				k.ack(k.s, list...)
				for _, id := range list {
					delete(pending, id)
					acked[id] = true
				}
			})
		}
	}
	// Every slot gets an owner with room; then everything must drain.
	if len(cs) == 0 || sticky {
		for i := 0; i < 4; i++ {
			run("add", false, addConsumer)
		}
	}
	for round := 0; len(acked) < len(ids); round++ {
		if round > 50 {
			t.Fatalf("stalled with %d of %d entries acked", len(acked), len(ids))
		}
		for _, c := range cs {
			run("flow", true, func() { k.s.flow(c, 10) })
		}
		var all []int64
		for id := range pending {
			all = append(all, id)
		}
		run("ack", true, func() {
			k.ack(k.s, all...)
			for _, id := range all {
				delete(pending, id)
				acked[id] = true
			}
		})
	}
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if d := k.disp(); len(d.hashes) != 0 || len(d.entries) != 0 {
		t.Fatalf("state left after everything was acked: %d slots, %d entries", len(d.hashes), len(d.entries))
	}
}

// TestKeySharedRangeSplit checks the range-split selector against Pulsar's
// HashRangeAutoSplitStickyKeyConsumerSelector: halves of the largest range
// (the lower half to the newcomer), a leaving range to the upper neighbour,
// the top range to the one below it. It decides, for example, that the
// client suite's keys key1 (slot 293) and key2 (14772) go to the second
// consumer and key3 (60248) stays with the first.
func TestKeySharedRangeSplit(t *testing.T) {
	d := newKeySharedDispatcher(nil)
	d.split = true
	a, b, c, e := &Consumer{id: 1, name: "x"}, &Consumer{id: 2, name: "x"}, &Consumer{id: 3, name: "y"}, &Consumer{id: 4, name: "z"}
	ends := func() []int {
		var out []int
		for _, p := range d.splits {
			out = append(out, p.end)
		}
		return out
	}
	for _, x := range []*Consumer{a, b} {
		if err := d.add(x); err != nil {
			t.Fatal(err)
		}
	}
	for slot, want := range map[uint16]*Consumer{0: b, keySlot([]byte("key1")): b, keySlot([]byte("key2")): b,
		32768: b, 32769: a, keySlot([]byte("key3")): a, 65535: a} {
		if got := d.owner(slot); got != want {
			t.Errorf("slot %d: owner %d, want %d", slot, got.id, want.id)
		}
	}
	// Equal ranges: the first (lowest) one is split.
	if err := d.add(c); err != nil {
		t.Fatal(err)
	}
	if err := d.add(e); err != nil {
		t.Fatal(err)
	}
	if got, want := ends(), []int{16384, 32768, 49152, 65536}; !slices.Equal(got, want) {
		t.Fatalf("range ends %v, want %v", got, want)
	}
	if d.owner(100) != c || d.owner(20000) != b || d.owner(40000) != e || d.owner(60000) != a {
		t.Fatal("owners after four joined are not c, b, e, a from the bottom")
	}
	// b leaves: its range goes up to e.
	d.remove(b)
	if got, want := ends(), []int{16384, 49152, 65536}; !slices.Equal(got, want) || d.owner(20000) != e {
		t.Fatalf("after b left: ends %v, owner of 20000 %v", got, d.owner(20000).id)
	}
	// a (the top) leaves: e takes the top.
	d.remove(a)
	if got, want := ends(), []int{16384, 65536}; !slices.Equal(got, want) || d.owner(60000) != e {
		t.Fatalf("after a left: ends %v, owner of 60000 %v", got, d.owner(60000).id)
	}
	d.remove(c)
	d.remove(e)
	if len(d.splits) != 0 || d.owner(1) != nil {
		t.Fatalf("after all left: %v", ends())
	}
}
