package local

import "testing"

func TestEntryIndex(t *testing.T) {
	var x entryIndex
	x.reset(0)
	// 10,000 entries over three segments, crossing chunk boundaries.
	for id := int64(0); id < 10_000; id++ {
		x.add(id, uint64(1+id/4000), location{off: uint32(id), size: uint32(id % 7)})
	}
	check := func(id int64, seq uint64) {
		t.Helper()
		s, loc, _ := x.get(id, 0)
		if s != seq || loc.off != uint32(id) || loc.size != uint32(id%7) {
			t.Fatalf("get(%d) = %d %+v", id, s, loc)
		}
	}
	check(0, 1)
	check(3999, 1)
	check(4000, 2)
	check(4096, 2)
	check(9999, 3)
	var want int64
	for id := int64(0); id < 5000; id++ {
		want += id % 7
	}
	bytes, entries, dropped := x.trim(5000)
	if bytes != want || entries != 5000 || !dropped || x.first != 5000 || x.base > 5000 || 5000-x.base >= indexChunk {
		t.Fatalf("trim: %d bytes %d entries dropped %v first %d chunks %d", bytes, entries, dropped, x.first, len(x.chunks))
	}
	check(5000, 2)
	check(9999, 3)
	segs := 0
	x.segments(func(uint64) { segs++ })
	if segs != 2 {
		t.Fatalf("%d segments after trim, want 2", segs)
	}
	x.addLost(10_003)
	x.add(10_003, 3, location{off: 1, size: 1})
	if _, loc, _ := x.get(10_001, 0); loc.size != lostSize {
		t.Fatalf("lost entry: %+v", loc)
	}
	if _, entries, _ := x.trim(10_004); entries != 5001 || x.n != 0 || x.next() != 10_004 || len(x.runs) != 0 {
		t.Fatalf("trim all: entries %d n %d next %d runs %v", entries, x.n, x.next(), x.runs)
	}
	x.add(10_004, 4, location{})
	if x.first != 10_004 || x.n != 1 || len(x.runs) != 1 {
		t.Fatalf("add after trimming all: first %d n %d", x.first, x.n)
	}
}
