package broker

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strconv"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Key_Shared subscriptions.
//
// Every entry has a sticky key (ordering key, else partition key, else
// "NONE_KEY") whose hash is a slot in 0..65535. Each slot has at most one
// owner: a point on a consistent-hash ring (AUTO_SPLIT), a range split off
// by halving (AUTO_SPLIT with Config.KeySharedRangeSplit, Pulsar's
// subscriptionKeySharedUseConsistentHashing=false) or a consumer's
// declared range (STICKY). Ordering follows Pulsar 4.0's "draining hashes"
// (PIP-379): when a slot changes owner while its previous owner still holds
// unacked entries of it, only that slot waits, until those entries are acked
// or taken back; every other slot and every other consumer keeps flowing.
//
// Per slot the dispatcher keeps who holds unacked entries (and how many) and
// which entries of the slot wait in the subscription's replay queue, so an
// entry never overtakes an older one of its slot.

const (
	// keySharedSlots is the size of the hash space of sticky keys.
	keySharedSlots = 65536
	// ringPointsPerConsumer is Pulsar's default for AUTO_SPLIT.
	ringPointsPerConsumer = 100
	// keySharedMaxParked bounds the replay queue that entries held back for
	// their key may grow; past it the dispatcher stops taking new entries that
	// would have to wait, as Pulsar's look-ahead limit does, so memory stays
	// bounded behind a consumer that stopped reading.
	keySharedMaxParked = 20000
)

var noneKey = []byte("NONE_KEY")

// stickyKeyHash returns the slot of an entry. Only entry-level metadata is
// read: a batch follows its first message's key.
func stickyKeyHash(md *wire.MetadataInfo) uint16 {
	switch {
	case len(md.OrderingKey) > 0:
		return keySlot(md.OrderingKey)
	case len(md.PartitionKey) > 0:
		if md.PartitionKeyB64 {
			if k, err := base64.StdEncoding.DecodeString(string(md.PartitionKey)); err == nil {
				return keySlot(k)
			}
		}
		return keySlot(md.PartitionKey)
	}
	return keySlot(noneKey)
}

// keySlot maps a key to its slot exactly as Pulsar does, since STICKY
// consumers choose their ranges from this value: murmur3 x86_32 (seed 0),
// sign bit cleared, modulo 65536, with slot 0 reserved (it becomes 1).
func keySlot(key []byte) uint16 {
	h := (murmur3x86(key) & 0x7FFFFFFF) % keySharedSlots
	if h == 0 {
		h = 1
	}
	return uint16(h)
}

// murmur3x86 is MurmurHash3 x86_32 with seed 0 (the function of
// github.com/spaolacci/murmur3.Sum32, without its allocation).
func murmur3x86(data []byte) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	var h uint32
	n := len(data)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	switch n & 3 {
	case 3:
		k ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[i])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// replaySelector is implemented by dispatchers that know, without reading an
// entry, that it cannot be delivered now. The dispatch loop then reads up to
// max of the ids it returns instead of the head of the replay queue, so
// entries stuck behind one key cannot hide deliverable ones further back.
type replaySelector interface {
	replayable(replay []int64, max int) []int64
}

// keySharedDispatcher routes each entry to the owner of its key's slot.
type keySharedDispatcher struct {
	s  *Subscription // nil in tests that need no replay queue
	cs []*Consumer   // in join order
	// sticky and outOfOrder are the policy of the current consumers, set by
	// the first one; a consumer asking for another is refused.
	sticky, outOfOrder bool

	ring []ringPoint // AUTO_SPLIT, sorted by slot
	// split selects AUTO_SPLIT by halving ranges instead of the ring;
	// splits are then the consumers' range ends, ascending, the last 65536.
	split   bool
	splits  []splitPoint
	ordinal map[*Consumer]int // AUTO_SPLIT: tells apart consumers sharing a name
	ranges  []slotRange       // STICKY, sorted, not overlapping
	hashes  map[uint16]*hashState
	// free holds states of forgotten slots for reuse, with their slices'
	// capacity: a key with nothing in flight costs no allocation.
	free    []*hashState
	entries map[int64]uint16 // slot of each entry pending on a consumer or parked
	// parked counts ids in hashState.parked, including stale ones (acked or
	// trimmed while in the replay queue), to know when to sweep them.
	parked int

	// atLimit is set when next refused a new entry because the replay queue
	// reached keySharedMaxParked; the loop then sleeps until woken.
	atLimit bool

	// next's answer for lastID, reused by delivered that follows it.
	lastID   int64
	lastHash uint16
}

// ringPoint is one of a consumer's points on the AUTO_SPLIT ring; a slot
// belongs to the first point at or after it, wrapping around.
type ringPoint struct {
	slot uint16
	seq  int // join order, to break ties deterministically
	c    *Consumer
}

// splitPoint ends a range of the range-split selector: a slot belongs to
// the first point at or after it, as in Pulsar's
// HashRangeAutoSplitStickyKeyConsumerSelector.
type splitPoint struct {
	end int
	c   *Consumer
}

// slotRange is a STICKY consumer's inclusive range.
type slotRange struct {
	start, end uint16
	c          *Consumer
}

// hashState is what the dispatcher tracks for one slot.
type hashState struct {
	// holders are the consumers with unacked entries of the slot, with their
	// counts. There is one at most unless out-of-order delivery is allowed.
	holders []holding
	// parked are ids of the slot waiting in the replay queue, ascending.
	parked []int64
}

// holding is one consumer's count of unacked entries of a slot.
type holding struct {
	c *Consumer
	n int
}

// newKeySharedDispatcher returns the dispatcher of a Key_Shared
// subscription; s may be nil in tests that need no replay queue.
func newKeySharedDispatcher(s *Subscription) *keySharedDispatcher {
	d := &keySharedDispatcher{s: s, ordinal: map[*Consumer]int{}, hashes: map[uint16]*hashState{},
		entries: map[int64]uint16{}, lastID: -1}
	if s != nil && s.topic != nil && s.topic.b != nil {
		d.split = s.topic.b.cfg.KeySharedRangeSplit
	}
	// A dispatcher is replaced when the last consumer left; the entries its
	// consumers left in the replay queue keep their place in key order.
	if s != nil {
		if old, ok := s.disp.(*keySharedDispatcher); ok {
			for id, h := range old.entries {
				if d.inReplay(id) {
					d.park(id, h)
				}
			}
		}
	}
	return d
}

// modeName names a Key_Shared mode as the protocol does, for errors.
func modeName(sticky bool) string {
	if sticky {
		return "STICKY"
	}
	return "AUTO_SPLIT"
}

func (d *keySharedDispatcher) add(c *Consumer) error {
	meta := c.keyShared // nil: AUTO_SPLIT, in order
	sticky := meta.GetKeySharedMode() == pb.KeySharedMode_STICKY
	outOfOrder := meta.GetAllowOutOfOrderDelivery()
	if len(d.cs) > 0 {
		if sticky != d.sticky {
			return newError(pb.ServerError_ConsumerBusy, fmt.Sprintf(
				"Key_Shared subscription uses %s hash ranges; consumer %q asked for %s", modeName(d.sticky), c.name, modeName(sticky)))
		}
		if outOfOrder != d.outOfOrder {
			return newError(pb.ServerError_ConsumerBusy, fmt.Sprintf(
				"Key_Shared subscription has allowOutOfOrderDelivery=%v; consumer %q asked for %v", d.outOfOrder, c.name, outOfOrder))
		}
	}
	if sticky {
		rs, err := d.stickyRanges(c, meta.GetHashRanges())
		if err != nil {
			return err
		}
		d.ranges = append(d.ranges, rs...)
		slices.SortFunc(d.ranges, func(a, b slotRange) int { return int(a.start) - int(b.start) })
	} else {
		used := map[int]bool{}
		for _, x := range d.cs {
			if x.name == c.name {
				used[d.ordinal[x]] = true
			}
		}
		n := 0
		for used[n] {
			n++
		}
		d.ordinal[c] = n
	}
	d.cs = append(d.cs, c)
	d.sticky, d.outOfOrder = sticky, outOfOrder
	switch {
	case sticky:
	case d.split:
		if err := d.splitAdd(c); err != nil {
			d.cs = d.cs[:len(d.cs)-1]
			delete(d.ordinal, c)
			return err
		}
	default:
		d.buildRing()
	}
	return nil
}

// splitAdd gives a new consumer the lower half of the largest range (the
// first of equals), or everything to the first one.
func (d *keySharedDispatcher) splitAdd(c *Consumer) error {
	if len(d.splits) == 0 {
		d.splits = append(d.splits, splitPoint{end: keySharedSlots, c: c})
		return nil
	}
	best, size := 0, 0
	for i, p := range d.splits {
		lower := 0
		if i > 0 {
			lower = d.splits[i-1].end
		}
		if p.end-lower > size {
			best, size = i, p.end-lower
		}
	}
	if size < 2 {
		return newError(pb.ServerError_ConsumerAssignError, "Key_Shared: no hash range left to split for consumer "+strconv.Quote(c.name))
	}
	start := 0
	if best > 0 {
		start = d.splits[best-1].end + 1
	}
	mid := start + (d.splits[best].end-start)/2
	d.splits = slices.Insert(d.splits, best, splitPoint{end: mid, c: c})
	return nil
}

// splitRemove gives a leaving consumer's range to its upper neighbour, or,
// for the top range, extends the one below it to the top.
func (d *keySharedDispatcher) splitRemove(c *Consumer) {
	i := slices.IndexFunc(d.splits, func(p splitPoint) bool { return p.c == c })
	if i < 0 {
		return
	}
	if i == len(d.splits)-1 && i > 0 {
		d.splits[i].c = d.splits[i-1].c
		i--
	}
	d.splits = slices.Delete(d.splits, i, i+1)
}

// stickyRanges validates a STICKY consumer's ranges against its own and the
// other consumers' ones.
func (d *keySharedDispatcher) stickyRanges(c *Consumer, in []*pb.IntRange) ([]slotRange, error) {
	if len(in) == 0 {
		return nil, newError(pb.ServerError_ConsumerAssignError, "Key_Shared STICKY consumer must declare hash ranges")
	}
	out := make([]slotRange, 0, len(in))
	for _, r := range in {
		if r.GetStart() < 0 || r.GetEnd() >= keySharedSlots || r.GetStart() > r.GetEnd() {
			return nil, newError(pb.ServerError_ConsumerAssignError, fmt.Sprintf(
				"hash range [%d, %d] is not within [0, %d]", r.GetStart(), r.GetEnd(), keySharedSlots-1))
		}
		nr := slotRange{start: uint16(r.GetStart()), end: uint16(r.GetEnd()), c: c}
		for _, x := range append(out, d.ranges...) {
			if nr.start <= x.end && x.start <= nr.end {
				who := "another of its ranges"
				if x.c != c {
					who = fmt.Sprintf("consumer %q", x.c.name)
				}
				return nil, newError(pb.ServerError_ConsumerAssignError, fmt.Sprintf(
					"hash range [%d, %d] overlaps [%d, %d] of %s", nr.start, nr.end, x.start, x.end, who))
			}
		}
		out = append(out, nr)
	}
	return out, nil
}

// buildRing places ringPointsPerConsumer points per consumer. A point
// depends only on its consumer's name and ordinal, so a joining or leaving
// consumer moves only the slots next to its own points.
func (d *keySharedDispatcher) buildRing() {
	d.ring = d.ring[:0]
	for seq, c := range d.cs {
		prefix := c.name + "\x00" + strconv.Itoa(d.ordinal[c]) + "\x00"
		for i := 0; i < ringPointsPerConsumer; i++ {
			d.ring = append(d.ring, ringPoint{slot: keySlot([]byte(prefix + strconv.Itoa(i))), seq: seq, c: c})
		}
	}
	slices.SortFunc(d.ring, func(a, b ringPoint) int {
		if a.slot != b.slot {
			return int(a.slot) - int(b.slot)
		}
		return a.seq - b.seq
	})
}

func (d *keySharedDispatcher) remove(c *Consumer) {
	i := slices.Index(d.cs, c)
	if i < 0 {
		return
	}
	d.cs = slices.Delete(d.cs, i, i+1)
	switch {
	case d.sticky:
		d.ranges = slices.DeleteFunc(d.ranges, func(r slotRange) bool { return r.c == c })
	case d.split:
		d.splitRemove(c)
	default:
		delete(d.ordinal, c)
		d.buildRing()
	}
	// Its unacked entries stay counted until released, which the
	// subscription does right after (returnPending).
}

func (d *keySharedDispatcher) consumers() []*Consumer { return d.cs }

// owner is the consumer owning slot h, or nil.
func (d *keySharedDispatcher) owner(h uint16) *Consumer {
	if d.sticky {
		i := sort.Search(len(d.ranges), func(i int) bool { return d.ranges[i].end >= h })
		if i < len(d.ranges) && d.ranges[i].start <= h {
			return d.ranges[i].c
		}
		return nil
	}
	if d.split {
		i := sort.Search(len(d.splits), func(i int) bool { return d.splits[i].end >= int(h) })
		if i == len(d.splits) {
			return nil
		}
		return d.splits[i].c
	}
	if len(d.ring) == 0 {
		return nil
	}
	i := sort.Search(len(d.ring), func(i int) bool { return d.ring[i].slot >= h })
	if i == len(d.ring) {
		i = 0
	}
	return d.ring[i].c
}

// anyPermits reports whether some consumer can take an entry at all.
func (d *keySharedDispatcher) anyPermits() bool {
	for _, c := range d.cs {
		if c.available() {
			return true
		}
	}
	return false
}

func (d *keySharedDispatcher) next(id int64, md *wire.MetadataInfo) (*Consumer, bool) {
	if !d.anyPermits() {
		return nil, false // nothing can move: the loop must stop, not park everything
	}
	d.atLimit = false
	h := stickyKeyHash(md)
	d.lastID, d.lastHash = id, h
	c := d.owner(h)
	if c != nil && c.available() && !d.mustWait(h, c, id) {
		return c, false
	}
	if !d.tracking() {
		return nil, true // non-persistent: the message is dropped
	}
	if len(d.s.replay) >= keySharedMaxParked && !d.inReplay(id) {
		d.atLimit = true
		return nil, false
	}
	d.park(id, h)
	return nil, true
}

// mustWait reports whether entry id of slot h must wait before going to its
// owner c: another consumer still holds unacked entries of the slot (it is
// draining), or an older entry of the slot waits in the replay queue.
func (d *keySharedDispatcher) mustWait(h uint16, c *Consumer, id int64) bool {
	if d.outOfOrder {
		return false
	}
	st := d.hashes[h]
	if st == nil {
		return false
	}
	for _, hd := range st.holders {
		if hd.c != c {
			return true
		}
	}
	return d.olderParked(h, st, id)
}

// olderParked reports whether an entry of the slot older than id is in the
// replay queue, dropping the ids that left it meanwhile.
func (d *keySharedDispatcher) olderParked(h uint16, st *hashState, id int64) bool {
	for len(st.parked) > 0 {
		p := st.parked[0]
		if p >= id {
			return false
		}
		if d.inReplay(p) {
			return true
		}
		st.parked = st.parked[1:]
		d.parked--
		delete(d.entries, p)
	}
	d.cleanup(h, st)
	return false
}

func (d *keySharedDispatcher) delivered(c *Consumer, id int64, md *wire.MetadataInfo) {
	h := d.lastHash
	if id != d.lastID {
		h = stickyKeyHash(md)
	}
	st := d.state(h)
	if i, found := slices.BinarySearch(st.parked, id); found {
		if i == 0 {
			st.parked = st.parked[1:]
		} else {
			st.parked = slices.Delete(st.parked, i, i+1)
		}
		d.parked--
	}
	d.entries[id] = h
	for i := range st.holders {
		if st.holders[i].c == c {
			st.holders[i].n++
			return
		}
	}
	st.holders = append(st.holders, holding{c: c, n: 1})
}

func (d *keySharedDispatcher) released(c *Consumer, id int64) {
	h, ok := d.entries[id]
	if !ok {
		return
	}
	st := d.hashes[h]
	if st == nil {
		delete(d.entries, id)
		return
	}
	for i := range st.holders {
		if st.holders[i].c == c {
			if st.holders[i].n--; st.holders[i].n == 0 {
				st.holders = slices.Delete(st.holders, i, i+1)
			}
			break
		}
	}
	if d.tracking() && (d.s.cursor == nil || !d.s.cursor.IsAcked(id)) {
		// Taken back for redelivery: the subscription puts it in the replay
		// queue right after this call.
		d.park(id, h)
	} else {
		delete(d.entries, id)
	}
	if len(st.holders) == 0 && (len(st.parked) > 0 || d.atLimit) && d.s != nil {
		// The slot finished draining and entries may wait for it; acks alone
		// do not wake the dispatch loop.
		d.s.signal()
	}
	d.cleanup(h, st)
}

// replayable picks up to max ids of the replay queue, in order, skipping
// those whose slot cannot be delivered now (no owner, owner without permits,
// or draining). Entries of unknown slot (e.g. delayed ones) are always tried.
func (d *keySharedDispatcher) replayable(replay []int64, max int) []int64 {
	out := make([]int64, 0, min(max, len(replay)))
	blocked := map[uint16]bool{}
	for _, id := range replay {
		if len(out) == max {
			break
		}
		h, ok := d.entries[id]
		if ok {
			b, seen := blocked[h]
			if !seen {
				c := d.owner(h)
				b = c == nil || !c.available()
				if !b && !d.outOfOrder {
					if st := d.hashes[h]; st != nil {
						for _, hd := range st.holders {
							b = b || hd.c != c
						}
					}
				}
				blocked[h] = b
			}
			if b {
				continue
			}
		}
		out = append(out, id)
	}
	return out
}

// tracking reports whether entries are delivered through the replay queue
// and acked; non-persistent topics only ask next for each message.
func (d *keySharedDispatcher) tracking() bool {
	return d.s != nil && (d.s.topic == nil || d.s.topic.ledger != nil)
}

// inReplay reports whether entry id is in the subscription's replay queue.
func (d *keySharedDispatcher) inReplay(id int64) bool {
	if d.s == nil {
		return false
	}
	_, found := slices.BinarySearch(d.s.replay, id)
	return found
}

// state returns the tracking of slot h, creating it.
func (d *keySharedDispatcher) state(h uint16) *hashState {
	st := d.hashes[h]
	if st == nil {
		if n := len(d.free); n > 0 {
			st, d.free = d.free[n-1], d.free[:n-1]
		} else {
			st = &hashState{}
		}
		d.hashes[h] = st
	}
	return st
}

// maxFreeHashStates bounds the reuse pool (a slot state is a few dozen bytes).
const maxFreeHashStates = 4096

// cleanup forgets a slot nobody holds and nothing waits for.
func (d *keySharedDispatcher) cleanup(h uint16, st *hashState) {
	if len(st.holders) == 0 && len(st.parked) == 0 {
		delete(d.hashes, h)
		if len(d.free) < maxFreeHashStates {
			clear(st.holders[:cap(st.holders)]) // drop consumer pointers
			st.holders, st.parked = st.holders[:0], st.parked[:0]
			d.free = append(d.free, st)
		}
	}
}

// park records that entry id of slot h waits in the replay queue (the
// subscription adds it there after this call).
func (d *keySharedDispatcher) park(id int64, h uint16) {
	if d.parked > 2*len(d.s.replay)+1024 {
		d.sweep() // before the insert: id is not in the replay queue yet
	}
	st := d.state(h)
	i, found := slices.BinarySearch(st.parked, id)
	if found {
		return
	}
	st.parked = slices.Insert(st.parked, i, id)
	d.entries[id] = h
	d.parked++
}

// sweep drops parked ids that left the replay queue without being
// delivered (acked, trimmed or reset), so they cannot pile up.
func (d *keySharedDispatcher) sweep() {
	d.parked = 0
	for h, st := range d.hashes {
		kept := st.parked[:0]
		for _, id := range st.parked {
			if d.inReplay(id) {
				kept = append(kept, id)
			} else if _, pending := d.s.pending[id]; !pending {
				delete(d.entries, id)
			}
		}
		st.parked = kept
		d.parked += len(kept)
		d.cleanup(h, st)
	}
}
