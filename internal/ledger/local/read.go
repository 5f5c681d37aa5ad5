package local

import (
	"fmt"
	"io"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// diskRead is an entry of a Read result that is not cached: out[pos] is filled
// from the record at loc in seg (referenced until the read is done).
type diskRead struct {
	pos int
	seg *segment
	loc location
}

// readGap is how many bytes of other ledgers' records a read may skip over to
// fetch two records with one call rather than two.
const readGap = 16 << 10

func releaseReads(segs *segmentSet, reads []diskRead) {
	for _, r := range reads {
		segs.release(r.seg)
	}
}

// backgroundStep is the most a background read asks of the disk at once.
// With the segment's readahead off, the journal's fdatasync then waits
// behind at most one such read: reading evicted data in 1 MiB steps with
// the kernel's readahead took a concurrent fdatasync's p99 from about 0.5
// to 3.7–5.7 ms on this machine, in 256 KiB steps without readahead it
// stayed at 0.46–0.59 ms (mbbench syncread, docs/benchmarks.md, session 13).
const backgroundStep = 256 << 10

// readRecords fills the entries of out listed in reads (ascending ids) from the
// journal, reading neighbouring records with one ReadAt and verifying every
// record. A record that does not check is never returned: its entry is
// reported, marked lost (later reads skip it) and left out of the result.
//
// With scratch, the records are read into *scratch (grown for the next call
// when too small) instead of new memory. A background read (an offload's, a
// compaction's) goes through the segment's background handle in steps of
// backgroundStep.
func readRecords(l *ledgerState, out []ledger.Entry, reads []diskRead, scratch *[]byte, background bool) ([]ledger.Entry, error) {
	defer releaseReads(l.s.segs, reads)
	var used, need int64 // bytes of *scratch taken; bytes all runs needed
	alloc := func(n int64) []byte {
		need += n
		if scratch != nil && used+n <= int64(cap(*scratch)) {
			b := (*scratch)[used : used+n : used+n]
			used += n
			return b
		}
		return make([]byte, n)
	}
	if scratch != nil {
		defer func() {
			if need > int64(cap(*scratch)) {
				*scratch = make([]byte, 0, need)
			}
		}()
	}
	bad := 0
	for i := 0; i < len(reads); {
		seg := reads[i].seg
		start := int64(reads[i].loc.off)
		end := start + recordHeaderSize + int64(reads[i].loc.size)
		k := i + 1
		for ; k < len(reads) && reads[k].seg == seg; k++ {
			off := int64(reads[k].loc.off)
			if off < end || off-end > readGap {
				break
			}
			end = off + recordHeaderSize + int64(reads[k].loc.size)
		}
		buf := alloc(end - start)
		f, step := seg.file, len(buf)
		if background {
			f, step = l.s.segs.background(seg), backgroundStep
		}
		if n, err := readAt(f, buf, start, step); n < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("ledger/local: %s: read segment %d at %d: %w", l.name, seg.seq, start, err)
		}
		for _, r := range reads[i:k] {
			rec := buf[int64(r.loc.off)-start:]
			id := out[r.pos].ID
			data := rec[recordHeaderSize : recordHeaderSize+int(r.loc.size) : recordHeaderSize+int(r.loc.size)]
			h, ok := decodeHeader(rec, l.s.journal.seed)
			if !ok || h.seq != seg.seq || h.size != r.loc.size || h.ledger != l.id || h.entry != id || !h.dataValid(data) {
				l.readDamaged(id, seg.seq, r.loc)
				out[r.pos].ID = -1
				bad++
				continue
			}
			out[r.pos].Data = data
		}
		i = k
	}
	if bad > 0 {
		kept := out[:0]
		for _, e := range out {
			if e.ID >= 0 {
				kept = append(kept, e)
			}
		}
		out = kept
	}
	return out, nil
}

// readAt fills buf from off with reads of at most step bytes, one after
// the other.
func readAt(f vfs.File, buf []byte, off int64, step int) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := f.ReadAt(buf[n:min(n+step, len(buf))], off+int64(n))
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, nil
}

// readDamaged reports entry id, whose record at loc in segment seq does not
// check, and marks it lost.
func (l *ledgerState) readDamaged(id int64, seq uint64, loc location) {
	l.mu.Lock()
	marked := false
	if id >= l.idx.first && id < l.idx.next() {
		if slot := l.idx.slot(id); slot.size != lostSize {
			slot.size = lostSize
			l.size -= int64(loc.size)
			l.count--
			l.lost++
			marked = true
		}
	}
	l.mu.Unlock()
	if marked { // else another read found it first, or it was trimmed
		l.s.damage.lost.Add(1)
		l.s.damage.record(l.s.log, "journal record damaged: entry lost, not served",
			"file", segmentName(l.s.journalDir, seq), "offset", loc.off, "bytes", recordHeaderSize+int64(loc.size),
			"ledger", l.name, "ledger_id", l.id, "entry", id)
	}
}
