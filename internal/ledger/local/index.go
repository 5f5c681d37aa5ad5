package local

// entryIndex maps the entry ids of one ledger to their records in the journal.
// Ids are consecutive, so it is an array of 8-byte locations indexed by id,
// kept in fixed-size chunks: growing never copies it and trimming frees whole
// chunks. Alongside, one run per segment the entries span (a ledger's entries
// in a segment are a contiguous id range). Memory: 8 bytes per entry.
type entryIndex struct {
	first  int64 // id of the first entry
	base   int64 // id of chunks[0][0]; first-base < indexChunk
	n      int64 // number of entries
	chunks []*[indexChunk]location
	runs   []segRun // sorted by first; runs[0].first <= first when n > 0
}

const indexChunk = 512 // 4 KiB: small for the many ledgers with few entries

// location is where a record starts in its segment and the size of its data.
type location struct {
	off  uint32
	size uint32 // lostSize: the record was lost to corruption
}

// lostSize marks an entry whose record was found corrupt or missing at
// recovery; Read skips it.
const lostSize = ^uint32(0)

// segRun says that entries from first on (up to the next run) are in segment seq.
type segRun struct {
	first int64
	seq   uint64
}

// next returns the id the next added entry must have.
func (x *entryIndex) next() int64 { return x.first + x.n }

func (x *entryIndex) slot(id int64) *location {
	pos := id - x.base
	return &x.chunks[pos/indexChunk][pos%indexChunk]
}

// push appends loc for id next().
func (x *entryIndex) push(loc location) {
	if pos := x.next() - x.base; pos == int64(len(x.chunks))*indexChunk {
		x.chunks = append(x.chunks, new([indexChunk]location))
	}
	*x.slot(x.next()) = loc
	x.n++
}

// add indexes entry id, which must be next() unless the index is empty.
func (x *entryIndex) add(id int64, seq uint64, loc location) {
	if x.n == 0 {
		x.reset(id)
	}
	if n := len(x.runs); n == 0 || x.runs[n-1].seq != seq {
		x.runs = append(x.runs, segRun{first: id, seq: seq})
	}
	x.push(loc)
}

// reset empties the index, the next entry being id.
func (x *entryIndex) reset(id int64) {
	clear(x.chunks)
	x.chunks = x.chunks[:0]
	x.runs = x.runs[:0]
	x.first, x.base, x.n = id, id, 0
}

// addLost records ids next()..upTo-1 as lost.
func (x *entryIndex) addLost(upTo int64) {
	for x.next() < upTo {
		x.push(location{size: lostSize})
	}
}

// get returns the location of id, which must be in the index, and the
// segment holding it, searching runs from hint (returned for the next call).
func (x *entryIndex) get(id int64, hint int) (seq uint64, loc location, nextHint int) {
	if len(x.runs) == 0 { // only lost entries
		return 0, *x.slot(id), 0
	}
	i := min(hint, len(x.runs)-1)
	for i > 0 && x.runs[i].first > id {
		i--
	}
	for i+1 < len(x.runs) && x.runs[i+1].first <= id {
		i++
	}
	return x.runs[i].seq, *x.slot(id), i
}

// trim drops the entries below before (at most next()), returning the bytes
// and count of the (not lost) entries dropped and whether a segment run went
// away.
func (x *entryIndex) trim(before int64) (bytes, entries int64, droppedRun bool) {
	if before <= x.first {
		return 0, 0, false
	}
	for id := x.first; id < before && id < x.next(); id++ {
		if l := x.slot(id); l.size != lostSize {
			bytes += int64(l.size)
			entries++
		}
	}
	if before >= x.next() {
		droppedRun = len(x.runs) > 0
		x.reset(before)
		return bytes, entries, droppedRun
	}
	x.n -= before - x.first
	x.first = before
	if k := int((x.first - x.base) / indexChunk); k > 0 {
		clear(x.chunks[:k])
		x.chunks = append(x.chunks[:0], x.chunks[k:]...)
		x.base += int64(k) * indexChunk
	}
	r := 0
	for r+1 < len(x.runs) && x.runs[r+1].first <= x.first {
		r++
	}
	if r > 0 {
		x.runs = append(x.runs[:0], x.runs[r:]...)
	}
	return bytes, entries, r > 0
}

// segments calls fn with every segment holding an entry of the index.
func (x *entryIndex) segments(fn func(seq uint64)) {
	for _, r := range x.runs {
		fn(r.seq)
	}
}

// forEach calls fn with every location, in id order.
func (x *entryIndex) forEach(fn func(loc location)) {
	for id := x.first; id < x.next(); id++ {
		fn(*x.slot(id))
	}
}
