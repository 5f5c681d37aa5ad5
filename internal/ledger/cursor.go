package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// CursorState is the acknowledgement state of one subscription: a mark-delete
// position, the ids acknowledged individually beyond it (kept as ranges, so an
// ack hole costs one range however many ids follow it), and the pending
// bitsets of partly acknowledged batch entries.
//
// Memory is 16 bytes per range plus the bitsets; a range needs an unacked id
// on each side, so there are at most (LastEntryID-MarkDelete)/2 of them. The
// encoding (MarshalBinary) takes 2 bytes per range while gaps and run lengths
// stay below 128 ids and never more than 20.
//
// A CursorState is not safe for concurrent use.
type CursorState struct {
	// MarkDelete is the highest id such that every id <= MarkDelete is
	// acknowledged; -1 when none is. Read it; move it with AckCumulative.
	MarkDelete int64
	// Properties are the subscription properties, persisted with the state.
	Properties map[string]string

	ranges  []ackRange        // acked ids > MarkDelete+1; sorted, disjoint, never adjacent
	acked   int64             // number of ids covered by ranges
	batches map[int64][]int64 // pending bitsets of partly acked entries > MarkDelete
}

// ackRange is an inclusive range of acknowledged ids.
type ackRange struct{ lo, hi int64 }

func (r ackRange) len() int64 { return r.hi - r.lo + 1 }

// NewCursorState returns a state where every id <= markDelete is acknowledged
// (markDelete -1: none).
func NewCursorState(markDelete int64) *CursorState {
	return &CursorState{MarkDelete: max(markDelete, -1)}
}

// search returns the index of the first range with hi >= id.
func (c *CursorState) search(id int64) int {
	return sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i].hi >= id })
}

// Ack acknowledges one entry. It is idempotent; ids <= MarkDelete are ignored.
// MarkDelete advances when the acked ids become contiguous with it. A batch
// pending set stored for id is dropped.
func (c *CursorState) Ack(id int64) {
	if id <= c.MarkDelete {
		return
	}
	delete(c.batches, id)
	if id == c.MarkDelete+1 {
		c.MarkDelete = id
		c.absorbFront()
		return
	}
	i := c.search(id)
	if i < len(c.ranges) && c.ranges[i].lo <= id {
		return
	}
	left := i > 0 && c.ranges[i-1].hi == id-1
	right := i < len(c.ranges) && c.ranges[i].lo == id+1
	switch {
	case left && right:
		c.ranges[i-1].hi = c.ranges[i].hi
		c.ranges = slices.Delete(c.ranges, i, i+1)
	case left:
		c.ranges[i-1].hi = id
	case right:
		c.ranges[i].lo = id
	default:
		c.ranges = slices.Insert(c.ranges, i, ackRange{id, id})
	}
	c.acked++
}

// absorbFront drops the ranges that MarkDelete reached and, when the next one
// is contiguous with it, moves MarkDelete to its end.
func (c *CursorState) absorbFront() {
	n := 0
	for n < len(c.ranges) && c.ranges[n].hi <= c.MarkDelete {
		c.acked -= c.ranges[n].len()
		n++
	}
	if n < len(c.ranges) && c.ranges[n].lo <= c.MarkDelete+1 {
		c.acked -= c.ranges[n].len()
		c.MarkDelete = c.ranges[n].hi
		n++
	}
	if n > 0 {
		c.ranges = c.ranges[n:]
	}
}

// AckCumulative acknowledges every id <= id; it is a no-op when id <= MarkDelete.
func (c *CursorState) AckCumulative(id int64) {
	if id <= c.MarkDelete {
		return
	}
	c.MarkDelete = id
	c.absorbFront()
	for b := range c.batches {
		if b <= c.MarkDelete {
			delete(c.batches, b)
		}
	}
}

// AckBatch applies a batch-index acknowledgement to entry id. pending is a
// Java-BitSet-style set (bit i of word i/64 set: message i of the batch is
// still not acknowledged); it is ANDed into the stored set, an absent stored
// set meaning every message is pending. size is the number of messages in the
// batch (<= 0 when unknown). AckBatch reports whether no message remains
// pending, in which case the entry is acknowledged as by Ack.
func (c *CursorState) AckBatch(id int64, pending []int64, size int) bool {
	if c.IsAcked(id) {
		return true
	}
	stored, ok := c.batches[id]
	words := len(pending)
	if ok {
		words = min(words, len(stored))
	}
	if size > 0 {
		words = min(words, (size+63)/64)
	}
	// Trailing zero words carry nothing: find the last pending word first so
	// that the stored set never ends in zeros.
	res := make([]int64, words)
	last := -1
	for w := range res {
		v := pending[w]
		if ok {
			v &= stored[w]
		}
		if size > 0 && w == (size-1)/64 && size%64 != 0 {
			v &= int64(uint64(1)<<(size%64) - 1)
		}
		res[w] = v
		if v != 0 {
			last = w
		}
	}
	if last < 0 {
		c.Ack(id)
		return true
	}
	if c.batches == nil {
		c.batches = make(map[int64][]int64)
	}
	c.batches[id] = res[:last+1]
	return false
}

// IsAcked reports whether entry id is fully acknowledged.
func (c *CursorState) IsAcked(id int64) bool {
	if id <= c.MarkDelete {
		return true
	}
	i := c.search(id)
	return i < len(c.ranges) && c.ranges[i].lo <= id
}

// BatchPending returns the stored pending set of a partly acknowledged entry,
// nil when the entry has none (not acked at all, or fully acked). The result
// must not be modified.
func (c *CursorState) BatchPending(id int64) []int64 {
	if id <= c.MarkDelete {
		return nil
	}
	return c.batches[id]
}

// NextUnacked returns the smallest id >= from that is not fully acknowledged.
// A partly acknowledged batch entry counts as not acknowledged.
func (c *CursorState) NextUnacked(from int64) int64 {
	if from <= c.MarkDelete {
		from = c.MarkDelete + 1
	}
	i := c.search(from)
	if i < len(c.ranges) && c.ranges[i].lo <= from {
		return c.ranges[i].hi + 1 // ranges are never adjacent
	}
	return from
}

// AckedAfterMarkDelete returns how many ids in (MarkDelete, upTo] are acknowledged
// individually, for backlog counts. It costs O(ranges above upTo).
func (c *CursorState) AckedAfterMarkDelete(upTo int64) int64 {
	if upTo <= c.MarkDelete {
		return 0
	}
	n := c.acked
	for i := len(c.ranges) - 1; i >= 0; i-- {
		r := c.ranges[i]
		if r.lo > upTo {
			n -= r.len()
			continue
		}
		if r.hi > upTo {
			n -= r.hi - upTo
		}
		break
	}
	return n
}

// HighestAcked returns the highest id acknowledged in any way (by
// mark-delete, individually or for part of a batch); MarkDelete when nothing
// beyond it is. A store uses it to never hand out again an id a subscription
// has seen.
func (c *CursorState) HighestAcked() int64 {
	h := c.MarkDelete
	if n := len(c.ranges); n > 0 {
		h = max(h, c.ranges[n-1].hi)
	}
	for id := range c.batches {
		h = max(h, id)
	}
	return h
}

// RangeCount returns the number of acknowledged ranges beyond MarkDelete.
func (c *CursorState) RangeCount() int { return len(c.ranges) }

// Clone returns a deep copy of c.
func (c *CursorState) Clone() *CursorState {
	d := &CursorState{
		MarkDelete: c.MarkDelete,
		ranges:     slices.Clone(c.ranges),
		acked:      c.acked,
	}
	if c.Properties != nil {
		d.Properties = make(map[string]string, len(c.Properties))
		for k, v := range c.Properties {
			d.Properties[k] = v
		}
	}
	if len(c.batches) > 0 {
		d.batches = make(map[int64][]int64, len(c.batches))
		for id, bits := range c.batches {
			d.batches[id] = slices.Clone(bits)
		}
	}
	return d
}

const cursorEncodingVersion = 1

// MarshalBinary encodes the state compactly: the mark-delete position, the
// properties, each range as two uvarints (gap after the previous range, run
// length), and the batch bitsets. There is no cap on the number of ranges.
func (c *CursorState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+2*len(c.ranges))
	b = append(b, cursorEncodingVersion)
	b = binary.AppendVarint(b, c.MarkDelete)

	keys := make([]string, 0, len(c.Properties))
	for k := range c.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, c.Properties[k])
	}

	b = binary.AppendUvarint(b, uint64(len(c.ranges)))
	prev := c.MarkDelete + 1 // first id that may be unacked
	for _, r := range c.ranges {
		b = binary.AppendUvarint(b, uint64(r.lo-prev-1)) // >= 0: ranges are never adjacent
		b = binary.AppendUvarint(b, uint64(r.hi-r.lo))
		prev = r.hi + 1
	}

	ids := make([]int64, 0, len(c.batches))
	for id := range c.batches {
		if id > c.MarkDelete {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	prev = c.MarkDelete + 1
	for _, id := range ids {
		bits := c.batches[id]
		b = binary.AppendUvarint(b, uint64(id-prev))
		prev = id + 1
		b = binary.AppendUvarint(b, uint64(len(bits)))
		for _, w := range bits {
			b = binary.LittleEndian.AppendUint64(b, uint64(w))
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCursorEncoding = errors.New("ledger: malformed cursor state")

// UnmarshalBinary decodes a state written by MarshalBinary, replacing c.
func (c *CursorState) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); v != cursorEncodingVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: version %d", errCursorEncoding, v)
	}
	s := CursorState{MarkDelete: d.varint()}
	if s.MarkDelete < -1 {
		return fmt.Errorf("%w: mark-delete %d", errCursorEncoding, s.MarkDelete)
	}
	if n := d.count(2); n > 0 {
		s.Properties = make(map[string]string, n)
		for range n {
			k := d.string()
			s.Properties[k] = d.string()
		}
	}
	prev := s.MarkDelete + 1
	if n := d.count(2); n > 0 {
		s.ranges = make([]ackRange, 0, n)
		for range n {
			lo := prev + 1 + d.int()
			hi := lo + d.int()
			if d.err != nil || lo <= prev || hi < lo {
				return d.fail("range")
			}
			s.ranges = append(s.ranges, ackRange{lo, hi})
			s.acked += hi - lo + 1
			prev = hi + 1
		}
	}
	prev = s.MarkDelete + 1
	if n := d.count(2); n > 0 {
		s.batches = make(map[int64][]int64, n)
		for range n {
			id := prev + d.int()
			if d.err != nil || id < prev || s.IsAcked(id) {
				return d.fail("batch id")
			}
			prev = id + 1
			bits := make([]int64, d.count(8))
			if len(bits) == 0 {
				return d.fail("empty bitset")
			}
			for w := range bits {
				bits[w] = int64(d.uint64())
			}
			s.batches[id] = bits
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return d.fail("trailing bytes")
	}
	*c = s
	return nil
}

// decoder reads the cursor encoding, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) error {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errCursorEncoding, what)
	}
	return d.err
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("length")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must fit a non-negative int64 with room to add.
func (d *decoder) int() int64 {
	v := d.uvarint()
	if v > 1<<62 {
		d.fail("value")
		return 0
	}
	return int64(v)
}

// count reads an element count, each element taking at least minSize bytes.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("bitset")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// AckedRanges calls fn, in order, with each range [lo, hi] of ids acked
// individually that reaches above from (lo may be below it), until fn
// returns false. A cursor used as a set of ids (the broker's marker index)
// is read this way.
func (c *CursorState) AckedRanges(from int64, fn func(lo, hi int64) bool) {
	for i := c.search(from); i < len(c.ranges); i++ {
		if !fn(c.ranges[i].lo, c.ranges[i].hi) {
			return
		}
	}
}
