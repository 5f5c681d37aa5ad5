package object

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
)

func sample(first, last int64, skip map[int64]bool) []ledger.Entry {
	var es []ledger.Entry
	for id := first; id <= last; id++ {
		if !skip[id] {
			es = append(es, ledger.Entry{ID: id, Data: []byte(fmt.Sprintf("entry-%d-%s", id, bytes.Repeat([]byte{'x'}, int(id%37))))})
		}
	}
	return es
}

func TestRoundTrip(t *testing.T) {
	h := Header{LedgerID: 7, First: 10, Last: 509}
	es := sample(10, 509, map[int64]bool{10: true, 200: true, 509: true})
	obj, err := Encode(h, es, 1000)
	if err != nil {
		t.Fatal(err)
	}
	x, got, err := Decode(obj)
	if err != nil {
		t.Fatal(err)
	}
	if x.Header != h {
		t.Fatalf("header %+v, want %+v", x.Header, h)
	}
	if len(x.Blocks) < 10 {
		t.Fatalf("%d blocks, want many with a 1000-byte block size", len(x.Blocks))
	}
	if len(got) != len(es) {
		t.Fatalf("%d entries, want %d", len(got), len(es))
	}
	for i := range es {
		if got[i].ID != es[i].ID || !bytes.Equal(got[i].Data, es[i].Data) {
			t.Fatalf("entry %d: got %d %q, want %d %q", i, got[i].ID, got[i].Data, es[i].ID, es[i].Data)
		}
	}
	// Find locates the block of an id, or the next one for a gap.
	if b := x.Blocks[x.Find(200)]; b.Last < 200 || (x.Find(200) > 0 && x.Blocks[x.Find(200)-1].Last >= 200) {
		t.Fatalf("Find(200) = block %+v", b)
	}
	if x.Find(510) != len(x.Blocks) {
		t.Fatal("Find past the end should return len(Blocks)")
	}
}

func TestEveryFlippedByteIsDetected(t *testing.T) {
	obj, err := Encode(Header{LedgerID: 1, First: 0, Last: 19}, sample(0, 19, nil), 64)
	if err != nil {
		t.Fatal(err)
	}
	for i := range obj {
		bad := bytes.Clone(obj)
		bad[i] ^= 0x01
		if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: err = %v, want ErrCorrupt", i, err)
		}
	}
	for n := range obj {
		if _, _, err := Decode(obj[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
	}
}

func TestEncodeRefusesBadInput(t *testing.T) {
	if _, err := Encode(Header{First: 5, Last: 4}, nil, 0); err == nil {
		t.Fatal("empty range accepted")
	}
	if _, err := Encode(Header{First: 0, Last: 9}, []ledger.Entry{{ID: 3}, {ID: 2}}, 0); err == nil {
		t.Fatal("unordered entries accepted")
	}
	if _, err := Encode(Header{First: 0, Last: 9}, []ledger.Entry{{ID: 10}}, 0); err == nil {
		t.Fatal("entry outside the range accepted")
	}
}

func FuzzDecode(f *testing.F) {
	obj, _ := Encode(Header{LedgerID: 3, First: 0, Last: 9}, sample(0, 9, map[int64]bool{4: true}), 40)
	f.Add(obj)
	f.Add([]byte("MBSO"))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, es, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes when cut the same way.
		for _, e := range es {
			if e.ID < x.Header.First || e.ID > x.Header.Last {
				t.Fatalf("entry %d outside %d-%d", e.ID, x.Header.First, x.Header.Last)
			}
		}
	})
}

// TestEncodeToReusesBuffer: encoding into a used, large enough buffer gives
// the bytes Encode gives, in that buffer.
func TestEncodeToReusesBuffer(t *testing.T) {
	h := Header{LedgerID: 7, First: 10, Last: 509}
	es := sample(10, 509, nil)
	want, err := Encode(h, es, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dirty := bytes.Repeat([]byte{0xff}, 2*len(want))
	got, err := EncodeTo(dirty, h, es, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || &got[0] != &dirty[0] {
		t.Fatalf("EncodeTo: equal %v, same buffer %v", bytes.Equal(got, want), &got[0] == &dirty[0])
	}
	if small, err := EncodeTo(make([]byte, 10), h, es, 1000); err != nil || !bytes.Equal(small, want) {
		t.Fatalf("EncodeTo a small buffer: %v", err)
	}
}

// TestEncoderMatchesEncode: an object built entry by entry, in a buffer
// that starts too small and grows, is the object Encode builds; Finish
// refuses a range that does not hold the entries added.
func TestEncoderMatchesEncode(t *testing.T) {
	h := Header{LedgerID: 7, First: 10, Last: 600}
	es := sample(10, 509, map[int64]bool{11: true})
	want, err := Encode(h, es, 1000)
	if err != nil {
		t.Fatal(err)
	}
	enc := NewEncoder(make([]byte, 0, HeaderSize), h.LedgerID, h.First, 1000)
	for _, e := range es {
		if err := enc.Add(e.ID, e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Add(es[3].ID, nil); err == nil {
		t.Fatal("an entry out of order was added")
	}
	got, err := enc.Finish(h.Last)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Finish: %v, equal to Encode's object: %v", err, bytes.Equal(got, want))
	}
	enc = NewEncoder(nil, 1, 0, 0)
	if err := enc.Add(5, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Finish(4); err == nil {
		t.Fatal("Finish accepted a range ending before its last entry")
	}
}
