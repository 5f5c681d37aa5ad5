package local

import (
	"bytes"
	"io"

	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// Scanning reads a segment from its header on and takes every record whose
// header checks (record.go) and names the segment. Bytes that are not such a
// record are skipped by looking for the next record magic: a damaged record
// costs its own bytes, never the records after it. What was skipped is
// damage when a record follows it, or when the next segment's header says
// the records went further (knownEnd); past the last record it is the end
// of the segment's records (zeros, the filler of a recycled segment, a torn
// write). A record whose header checks but whose data does not is one lost
// entry on the same terms.
//
// The exception is the last write of the last segment: a crash may have
// torn it (it may not have been synced, so nothing in it was acknowledged),
// and a torn write can look like damage followed by records. From the last
// write's first record on, the first defect ends the records.

// byteRange is a range of a segment's bytes.
type byteRange struct{ off, len int64 }

// segmentScan is what scanning one segment found.
type segmentScan struct {
	size     int64
	header   segmentHeader
	headerOK bool // a copy of the header checks and names this segment
	// end is where the last record taken ends; segmentHeaderSize when there
	// is none but a header, 0 when there is neither.
	end int64
	// damaged lists the bytes before end that are neither header nor record.
	damaged []byteRange
	// tailDirty: the bytes after end neither start with a zero record
	// header (written after each write into a preallocated segment) nor
	// are all zero: a torn write, or a recycled segment's old records.
	tailDirty bool
	// maxLedger is the highest ledger id in any header that checks, this
	// segment's or a stale one's (-1: none).
	maxLedger int64
}

// scanRecord is called for each record taken, in order; dataOK says whether
// its data matches its checksum (when not, the entry is lost).
type scanRecord func(h recordHeader, off int64, dataOK bool)

// scanned is a record read, not yet passed to scanRecord.
type scanned struct {
	h      recordHeader
	off    int64
	dataOK bool
}

func (r scanned) end() int64 { return r.off + recordHeaderSize + int64(r.h.size) }

// readSegmentHeader returns the header of a segment file, if one checks.
func readSegmentHeader(f vfs.File) (segmentHeader, bool) {
	var b [segmentHeaderSize]byte
	n, _ := f.ReadAt(b[:], 0)
	return decodeSegmentHeader(b[:n])
}

// scanSegment scans segment seq, whose records' header checksums start at
// seed; knownEnd is where its records end (0: unknown), last says it is the
// last segment of the journal.
func scanSegment(f vfs.File, seq uint64, seed uint32, knownEnd int64, last bool, fn scanRecord) (segmentScan, error) {
	size, err := f.Size()
	if err != nil {
		return segmentScan{}, err
	}
	sc := segmentScan{size: size, maxLedger: -1}
	r := segmentReader{f: f, size: size}
	var off int64
	if h, ok := readSegmentHeader(f); ok && h.seq == seq {
		sc.header, sc.headerOK = h, true
		off, sc.end = segmentHeaderSize, segmentHeaderSize
	}
	gap := int64(-1) // start of the bytes skipped since the last record
	if !sc.headerOK {
		gap = 0
	}
	// Records and skipped bytes not yet judged: those after a record with
	// damaged data (judged by what follows), and in the last segment all
	// those of the current write.
	var held []scanned
	var heldGaps []byteRange
	emit := func() {
		for _, rec := range held {
			fn(rec.h, rec.off, rec.dataOK)
			sc.end = rec.end()
		}
		sc.damaged = append(sc.damaged, heldGaps...)
		held, heldGaps = held[:0], heldGaps[:0]
	}
	for off+recordHeaderSize <= size {
		hdr, err := r.bytes(off, recordHeaderSize)
		if err != nil {
			return sc, err
		}
		h, ok := decodeHeader(hdr, seed)
		if ok {
			sc.maxLedger = max(sc.maxLedger, h.ledger)
		}
		if !ok || h.seq != seq || int64(h.size) > size-off-recordHeaderSize {
			if gap < 0 {
				gap = off
			}
			next, err := r.find(off+1, magicPrefix)
			if err != nil {
				return sc, err
			}
			if next < 0 {
				break
			}
			off = next
			continue
		}
		rec, err := r.bytes(off, recordHeaderSize+int(h.size))
		if err != nil {
			return sc, err
		}
		cur := scanned{h: h, off: off, dataOK: h.dataValid(rec[recordHeaderSize:])}
		if gap >= 0 && off > gap {
			heldGaps = append(heldGaps, byteRange{gap, off - gap})
		}
		gap = -1
		if (last && h.group) || (!last && len(held) > 0) {
			// A later write started: everything before it was synced. Or
			// a record follows the damaged one.
			emit()
		}
		if !last { // bytes skipped before a record are damage
			sc.damaged = append(sc.damaged, heldGaps...)
			heldGaps = heldGaps[:0]
		}
		if last || (!cur.dataOK && knownEnd < cur.end()) {
			held = append(held, cur)
		} else {
			fn(h, off, cur.dataOK)
			sc.end = cur.end()
		}
		off = cur.end()
	}
	// What is still held ends the records at its first defect.
	for i, rec := range held {
		if !rec.dataOK || (len(heldGaps) > 0 && heldGaps[0].off < rec.off) {
			held = held[:i]
			break
		}
	}
	heldGaps = nil
	emit()
	if sc.end < size {
		rest, err := r.bytes(sc.end, int(min(recordHeaderSize, size-sc.end)))
		if err != nil {
			return sc, err
		}
		sc.tailDirty = !allZero(rest)
	}
	return sc, nil
}

// segmentReader reads a segment sequentially through a large buffer.
type segmentReader struct {
	f      vfs.File
	size   int64
	buf    []byte
	bufOff int64
}

const replayChunk = 4 << 20

// bytes returns n bytes at off (off+n <= size), valid until the next call.
func (r *segmentReader) bytes(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff:][:n], nil
	}
	want := int(min(max(int64(n), replayChunk), r.size-off))
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	if m, err := r.f.ReadAt(r.buf, off); m < want {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, err
	}
	r.bufOff = off
	return r.buf[:n], nil
}

// find returns the offset of the first occurrence of pat at or after off,
// -1 when there is none.
func (r *segmentReader) find(off int64, pat []byte) (int64, error) {
	for off+int64(len(pat)) <= r.size {
		chunk, err := r.bytes(off, int(min(replayChunk, r.size-off)))
		if err != nil {
			return -1, err
		}
		if i := bytes.Index(chunk, pat); i >= 0 {
			return off + int64(i), nil
		}
		// The next chunk overlaps this one by len(pat)-1 bytes: a pattern
		// across the boundary is found there.
		off += int64(len(chunk) - len(pat) + 1)
	}
	return -1, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
