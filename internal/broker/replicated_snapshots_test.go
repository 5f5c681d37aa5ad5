package broker

import (
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
)

func snapIDs(c []cachedSnapshot) []int64 {
	out := make([]int64, len(c))
	for i, s := range c {
		out[i] = s.local
	}
	return out
}

func TestSnapshotCache(t *testing.T) {
	var c []cachedSnapshot
	for _, id := range []int64{10, 20, 21, 40, 50} {
		c = addSnapshot(c, cachedSnapshot{local: id}, 4)
	}
	// Over 4: the one whose removal leaves the smallest gap between its
	// neighbours goes (20: 10..21), never the first or the last.
	if got := snapIDs(c); len(got) != 4 || got[0] != 10 || got[3] != 50 || got[1] != 21 {
		t.Fatalf("cache %v", got)
	}
	c = addSnapshot(c, cachedSnapshot{local: 50}, 4) // the same again: ignored
	if len(c) != 4 {
		t.Fatalf("duplicate kept: %v", snapIDs(c))
	}
	rest, s, ok := advanceSnapshots(c, 39)
	if !ok || s.local != 21 || len(rest) != 2 {
		t.Fatalf("advance to 39: %v %v %v", s.local, ok, snapIDs(rest))
	}
	if _, _, ok := advanceSnapshots(rest, 39); ok {
		t.Fatal("a snapshot above the mark-delete was used")
	}
	// A snapshot below the last one: the subscription went back; start over.
	rest = addSnapshot(rest, cachedSnapshot{local: 5}, 4)
	if got := snapIDs(rest); len(got) != 1 || got[0] != 5 {
		t.Fatalf("after reset %v", got)
	}
}

func TestMarkerIndex(t *testing.T) {
	var x markerIndex
	x.load(nil)
	for _, id := range []int64{0, 1, 5, 9} {
		x.add(id)
	}
	for id, want := range map[int64]bool{0: true, 1: true, 2: false, 5: true, 8: false, 9: true} {
		if x.isMarker(id) != want {
			t.Fatalf("isMarker(%d) = %v", id, !want)
		}
	}
	c := ledger.NewCursorState(-1)
	c.Ack(5) // a subscription's dispatch acked marker 5
	if n := x.unacked(c, -1, 9); n != 3 {
		t.Fatalf("unacked markers in (-1, 9]: %d, want 3 (0, 1, 9)", n)
	}
	if n := x.unacked(c, 1, 8); n != 0 {
		t.Fatalf("unacked markers in (1, 8]: %d, want 0", n)
	}
	// Persisted form survives a reload.
	var y markerIndex
	y.load(x.set.Clone())
	if !y.isMarker(0) || !y.isMarker(9) || y.isMarker(2) {
		t.Fatal("reloaded index differs")
	}
}
