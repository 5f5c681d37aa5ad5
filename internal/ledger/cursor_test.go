package ledger

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestCursorAckAdvancesMarkDelete(t *testing.T) {
	c := NewCursorState(-1)
	c.Ack(2)
	c.Ack(4)
	if c.MarkDelete != -1 || c.RangeCount() != 2 {
		t.Fatalf("md=%d ranges=%d, want -1, 2", c.MarkDelete, c.RangeCount())
	}
	c.Ack(3) // joins 2..4
	if c.RangeCount() != 1 {
		t.Fatalf("ranges=%d, want 1", c.RangeCount())
	}
	c.Ack(1)
	if c.MarkDelete != -1 {
		t.Fatalf("md=%d, want -1 (0 is unacked)", c.MarkDelete)
	}
	c.Ack(0)
	if c.MarkDelete != 4 || c.RangeCount() != 0 {
		t.Fatalf("md=%d ranges=%d, want 4, 0", c.MarkDelete, c.RangeCount())
	}
	c.Ack(4) // idempotent, below mark-delete
	c.AckCumulative(2)
	if c.MarkDelete != 4 {
		t.Fatalf("md=%d after no-op acks", c.MarkDelete)
	}
	c.Ack(7)
	c.AckCumulative(5)
	if c.MarkDelete != 5 || !c.IsAcked(7) || c.IsAcked(6) {
		t.Fatalf("md=%d acked(6)=%v acked(7)=%v", c.MarkDelete, c.IsAcked(6), c.IsAcked(7))
	}
	c.AckCumulative(6) // reaches the range 7..7
	if c.MarkDelete != 7 || c.RangeCount() != 0 || c.AckedAfterMarkDelete(100) != 0 {
		t.Fatalf("md=%d ranges=%d", c.MarkDelete, c.RangeCount())
	}
}

func TestCursorBatch(t *testing.T) {
	c := NewCursorState(-1)
	// 70 messages: two words. Ack message 0 and 65.
	pending := []int64{^int64(1), ^int64(2)}
	if c.AckBatch(3, pending, 70) {
		t.Fatal("batch reported complete")
	}
	got := c.BatchPending(3)
	want := []int64{^int64(1), int64(1<<6-1) &^ 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pending=%x, want %x", got, want)
	}
	if c.IsAcked(3) || c.NextUnacked(0) != 0 {
		t.Fatal("partly acked entry counted as acked")
	}
	// A shorter set means the missing words hold no pending message.
	if c.AckBatch(3, []int64{0}, 70) != true {
		t.Fatal("batch not complete after all bits cleared")
	}
	if !c.IsAcked(3) || c.BatchPending(3) != nil {
		t.Fatal("entry not acked after the whole batch was")
	}
	if !c.AckBatch(3, []int64{-1}, 70) {
		t.Fatal("AckBatch on an acked entry must report true")
	}
	// Ack drops a stored set; AckCumulative drops those it covers.
	c.AckBatch(5, []int64{1}, 4)
	c.AckBatch(6, []int64{1}, 4)
	c.Ack(5)
	if c.BatchPending(5) != nil || c.BatchPending(6) == nil {
		t.Fatal("Ack must drop exactly its own pending set")
	}
	c.AckCumulative(6)
	if c.BatchPending(6) != nil || len(c.batches) != 0 {
		t.Fatal("AckCumulative left a pending set behind")
	}
}

// TestCursorAckHole is the case that breaks range caps: one unacked entry
// followed by a million acked ones must stay one range and a few bytes.
func TestCursorAckHole(t *testing.T) {
	c := NewCursorState(-1)
	for id := int64(1); id <= 1_000_000; id++ {
		c.Ack(id)
	}
	if c.RangeCount() != 1 || c.MarkDelete != -1 {
		t.Fatalf("ranges=%d md=%d, want 1, -1", c.RangeCount(), c.MarkDelete)
	}
	b, _ := c.MarshalBinary()
	if len(b) > 16 {
		t.Fatalf("encoding is %d bytes, want <= 16", len(b))
	}
	if c.NextUnacked(0) != 0 || c.NextUnacked(1) != 1_000_001 {
		t.Fatalf("NextUnacked = %d, %d", c.NextUnacked(0), c.NextUnacked(1))
	}
	if n := c.AckedAfterMarkDelete(1_000_000); n != 1_000_000 {
		t.Fatalf("AckedAfterMarkDelete = %d", n)
	}
	c.Ack(0)
	if c.MarkDelete != 1_000_000 || c.RangeCount() != 0 {
		t.Fatalf("md=%d ranges=%d after filling the hole", c.MarkDelete, c.RangeCount())
	}
}

// TestCursorEncodingSizeAlternating checks the documented bound for the worst
// dense pattern, every other id acked: 2 bytes per range (a gap of one id and a
// run of one id each fit a one-byte uvarint) plus a small header.
func TestCursorEncodingSizeAlternating(t *testing.T) {
	c := NewCursorState(-1)
	const n = 200_000
	for id := int64(1); id < n; id += 2 {
		c.Ack(id)
	}
	b, _ := c.MarshalBinary()
	if c.RangeCount() != n/2 {
		t.Fatalf("ranges=%d, want %d", c.RangeCount(), n/2)
	}
	if max := 2*c.RangeCount() + 16; len(b) > max {
		t.Fatalf("encoding is %d bytes for %d ranges, want <= %d", len(b), c.RangeCount(), max)
	}
	var d CursorState
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, c, &d)
}

func TestCursorEncodingRoundTrip(t *testing.T) {
	c := NewCursorState(41)
	c.Properties = map[string]string{"a": "1", "": "empty", "k": ""}
	c.Ack(43)
	c.Ack(50)
	c.AckBatch(45, []int64{6}, 3)
	c.AckBatch(60, []int64{-1, -1, 1}, 129)
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d CursorState
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, c, &d)
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not deterministic")
	}
	// Every strict prefix is malformed; none may panic or be accepted.
	for i := range len(b) {
		var e CursorState
		if e.UnmarshalBinary(b[:i]) == nil {
			t.Fatalf("prefix of %d bytes accepted", i)
		}
	}
	if (&CursorState{}).UnmarshalBinary(append(b, 0)) == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzCursorUnmarshal(f *testing.F) {
	c := NewCursorState(3)
	c.Ack(5)
	c.AckBatch(7, []int64{2}, 2)
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s CursorState
		if s.UnmarshalBinary(data) != nil {
			return
		}
		// Whatever decodes must re-encode to a state that decodes the same.
		b, _ := s.MarshalBinary()
		var s2 CursorState
		if err := s2.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-encoded state rejected: %v", err)
		}
		assertSameState(t, &s, &s2)
	})
}

func TestCursorClone(t *testing.T) {
	c := NewCursorState(-1)
	c.Properties = map[string]string{"x": "y"}
	c.Ack(3)
	c.AckBatch(5, []int64{3}, 2)
	d := c.Clone()
	assertSameState(t, c, d)
	d.Ack(4)
	d.AckBatch(5, []int64{1}, 2)
	d.Properties["x"] = "z"
	if c.IsAcked(4) || c.BatchPending(5)[0] != 3 || c.Properties["x"] != "y" {
		t.Fatal("mutating a clone changed the original")
	}
}

// model is the naive reference: a set of acked ids and per-entry pending bits.
type model struct {
	acked   map[int64]bool
	pending map[int64][]bool
}

func (m *model) ack(id int64) {
	m.acked[id] = true
	delete(m.pending, id)
}

func (m *model) markDelete() int64 {
	md := int64(-1)
	for m.acked[md+1] {
		md++
	}
	return md
}

func TestCursorRandomAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		const span = 400
		c := NewCursorState(-1)
		m := &model{acked: map[int64]bool{}, pending: map[int64][]bool{}}
		for step := range 3000 {
			id := int64(rng.IntN(span))
			switch r := rng.IntN(100); {
			case r < 2:
				c.AckCumulative(id)
				for i := int64(0); i <= id; i++ {
					m.ack(i)
				}
			case r < 20:
				size := 1 + int(id*37%130) // a batch keeps its size
				bits := make([]int64, rng.IntN((size+63)/64+1))
				for w := range bits {
					a, b := rng.Uint64(), rng.Uint64()
					bits[w] = int64(a | b) // mostly pending
				}
				done := c.AckBatch(id, bits, size)
				if !m.acked[id] {
					cur := m.pending[id]
					if cur == nil {
						cur = make([]bool, size)
						for i := range cur {
							cur[i] = true
						}
					}
					any := false
					next := make([]bool, len(cur))
					for i := range cur {
						w := i / 64
						next[i] = cur[i] && w < len(bits) && bits[w]&(1<<(i%64)) != 0
						any = any || next[i]
					}
					if any {
						m.pending[id] = next
					} else {
						m.ack(id)
					}
				}
				if done != m.acked[id] {
					t.Fatalf("seed %d step %d: AckBatch(%d) = %v, model %v", seed, step, id, done, m.acked[id])
				}
			default:
				c.Ack(id)
				m.ack(id)
			}
			checkAgainstModel(t, c, m, span, rng)
			if step%97 == 0 {
				b, _ := c.MarshalBinary()
				var d CursorState
				if err := d.UnmarshalBinary(b); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				assertSameState(t, c, &d)
				c = &d
			}
		}
	}
}

func checkAgainstModel(t *testing.T, c *CursorState, m *model, span int64, rng *rand.Rand) {
	t.Helper()
	md := m.markDelete()
	if c.MarkDelete != md {
		t.Fatalf("MarkDelete = %d, model %d", c.MarkDelete, md)
	}
	runs := 0
	for id := int64(0); id <= span+1; id++ {
		if c.IsAcked(id) != m.acked[id] {
			t.Fatalf("IsAcked(%d) = %v, model %v", id, c.IsAcked(id), m.acked[id])
		}
		if id > md && m.acked[id] && !m.acked[id-1] {
			runs++
		}
		want := m.pending[id]
		got := c.BatchPending(id)
		if (want == nil) != (got == nil) {
			t.Fatalf("BatchPending(%d) = %x, model %v", id, got, want)
		}
		for i, p := range want {
			w := i / 64
			if (w < len(got) && got[w]&(1<<(i%64)) != 0) != p {
				t.Fatalf("BatchPending(%d) bit %d = %x, model %v", id, i, got, p)
			}
		}
	}
	highest := md
	for id := range m.acked {
		highest = max(highest, id)
	}
	for id := range m.pending {
		highest = max(highest, id)
	}
	if c.HighestAcked() != highest {
		t.Fatalf("HighestAcked = %d, model %d", c.HighestAcked(), highest)
	}
	if c.RangeCount() != runs {
		t.Fatalf("RangeCount = %d, model %d", c.RangeCount(), runs)
	}
	from := int64(rng.IntN(int(span)+2)) - 1
	want := from
	for m.acked[want] {
		want++
	}
	if got := c.NextUnacked(from); got != max(want, md+1) {
		t.Fatalf("NextUnacked(%d) = %d, model %d", from, got, max(want, md+1))
	}
	upTo := int64(rng.IntN(int(span) + 2))
	var n int64
	for id := md + 1; id <= upTo; id++ {
		if m.acked[id] {
			n++
		}
	}
	if got := c.AckedAfterMarkDelete(upTo); got != n {
		t.Fatalf("AckedAfterMarkDelete(%d) = %d, model %d", upTo, got, n)
	}
}

func assertSameState(t *testing.T, a, b *CursorState) {
	t.Helper()
	if a.MarkDelete != b.MarkDelete || a.acked != b.acked ||
		!reflect.DeepEqual(a.ranges, b.ranges) && (len(a.ranges) > 0 || len(b.ranges) > 0) {
		t.Fatalf("states differ: md %d/%d acked %d/%d ranges %v/%v",
			a.MarkDelete, b.MarkDelete, a.acked, b.acked, a.ranges, b.ranges)
	}
	if len(a.Properties) != len(b.Properties) || len(a.Properties) > 0 && !reflect.DeepEqual(a.Properties, b.Properties) {
		t.Fatalf("properties differ: %v / %v", a.Properties, b.Properties)
	}
	if len(a.batches) != len(b.batches) || len(a.batches) > 0 && !reflect.DeepEqual(a.batches, b.batches) {
		t.Fatalf("batches differ: %v / %v", a.batches, b.batches)
	}
}

func BenchmarkCursorAck(b *testing.B) {
	// In-order acks with a permanent hole at 0 (the ack-hole pattern) and a
	// sprinkle of out-of-order ones.
	c := NewCursorState(-1)
	b.ReportAllocs()
	for i := range b.N {
		id := int64(i) + 1
		if i%8 == 7 {
			c.Ack(id + 3)
		} else {
			c.Ack(id)
		}
	}
	if c.RangeCount() > b.N/8+2 {
		b.Fatalf("ranges=%d", c.RangeCount())
	}
}
