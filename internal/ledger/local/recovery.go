package local

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// Recovery replays the journal at Open. Every record is checked (length,
// checksum); the first bad one ends its segment. A header of zeros is the end
// of a preallocated segment's records. In the last segment anything else is
// a torn write from a crash (nothing after it was ever acknowledged). The
// last segment is truncated where its records end and sealed: appends go to
// a new segment, so bytes of a write that never completed can never be
// followed by new records and read back as one. In an older segment a bad
// record is damage: the rest of that segment is ignored and reported, the
// entries of later segments are still used and the lost ids are skipped by
// Read.

// recover rebuilds the indexes of byID (ledgers by id, their trim points set)
// from the journal and opens the active segment.
func (s *Store) recover(byID map[int64]*ledgerState) error {
	names, err := s.fs.List(s.journalDir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		} else if strings.HasSuffix(name, spareSuffix) {
			if err := s.recoverSpare(name); err != nil {
				return err
			}
		} else {
			s.log.Warn("unexpected file in journal directory", "file", name)
		}
	}
	slices.Sort(seqs)
	j := s.journal
	for i, seq := range seqs {
		f, err := s.fs.Open(segmentName(s.journalDir, seq))
		if err != nil {
			return err
		}
		last := i == len(seqs)-1
		end, err := s.replaySegment(seq, f, byID, last)
		if err != nil {
			f.Close()
			return fmt.Errorf("segment %d: %w", seq, err)
		}
		seg := s.segs.add(seq, f)
		if last {
			j.active, j.activeSize = seg, end
		}
	}
	if j.active == nil {
		// roll creates active.seq+1: start the numbering at 1.
		j.active = &segment{}
	}
	if err := j.roll(); err != nil {
		return err
	}
	for _, l := range byID {
		l.finishRecovery()
	}
	return nil
}

// replaySegment indexes the records of one segment and returns where its
// valid records end.
func (s *Store) replaySegment(seq uint64, f vfs.File, byID map[int64]*ledgerState, last bool) (int64, error) {
	size, err := f.Size()
	if err != nil {
		return 0, err
	}
	r := segmentReader{f: f, size: size}
	var off int64
	var bad string
	for off < size {
		if size-off < recordHeaderSize {
			bad = "partial header"
			if rest, err := r.bytes(off, int(size-off)); err == nil && allZero(rest) {
				bad = ""
			}
			break
		}
		hdr, err := r.bytes(off, recordHeaderSize)
		if err != nil {
			return 0, err
		}
		if allZero(hdr) {
			break // the end of the records in a preallocated segment
		}
		h := decodeHeader(hdr)
		if h.size > MaxEntrySize || int64(h.size) > size-off-recordHeaderSize {
			bad = "bad length"
			break
		}
		rec, err := r.bytes(off, recordHeaderSize+int(h.size))
		if err != nil {
			return 0, err
		}
		if !h.valid(rec, rec[recordHeaderSize:]) {
			bad = "checksum mismatch"
			break
		}
		if l := byID[h.ledger]; l != nil { // else a deleted ledger's record
			l.replay(h.entry, seq, location{off: uint32(off), size: h.size})
		}
		off += recordHeaderSize + int64(h.size)
	}
	if !last {
		// Past a zero header a sealed segment holds zeros or, when it was
		// recycled, records of its earlier life: nothing to check.
		if bad != "" {
			s.log.Error("corrupt journal record: rest of segment ignored, its entries are lost",
				"segment", seq, "offset", off, "reason", bad, "ignored_bytes", size-off)
		}
		return off, nil
	}
	if off == size {
		return off, nil
	}
	if bad != "" {
		s.log.Warn("torn journal tail truncated", "segment", seq, "offset", off, "reason", bad, "bytes", size-off)
	}
	if err := f.Truncate(off); err != nil {
		return 0, fmt.Errorf("truncate torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync truncated segment: %w", err)
	}
	return off, nil
}

// recoverSpare keeps a spare segment left by the last run when it is
// complete (the preparer syncs it before use; a crash while it was written
// leaves it short), and removes it otherwise.
func (s *Store) recoverSpare(name string) error {
	j := s.journal
	path := filepath.Join(s.journalDir, name)
	recycled := strings.HasPrefix(name, recycledPrefix)
	var n int64
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.TrimPrefix(name, recycledPrefix), zeroedPrefix), "%d"+spareSuffix, &n); err == nil && n > j.spareSeq.Load() {
		j.spareSeq.Store(n) // new spares get names of their own
	}
	if j.prealloc && !j.hasSpare() {
		f, err := s.fs.Open(path)
		if err != nil {
			return err
		}
		if size, err := f.Size(); err == nil && size >= j.segSize {
			j.offerSpare(spareFile{f: f, name: path, recycled: recycled})
			return nil
		}
		f.Close()
	}
	return s.fs.Remove(path)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// replay indexes one record of the ledger found by recovery. Until
// finishRecovery, l.first holds the persisted trim point.
func (l *ledgerState) replay(id int64, seq uint64, loc location) {
	if id < l.first {
		return // trimmed
	}
	log := l.s.log
	if l.idx.n == 0 {
		if id > l.first {
			log.Error("journal lacks the first entries of a ledger; they are skipped",
				"ledger", l.name, "from", l.first, "to", id-1)
			l.first = id
		}
		l.idx.add(id, seq, loc)
		return
	}
	switch next := l.idx.next(); {
	case id == next:
	case id > next:
		log.Error("journal lacks entries of a ledger; they are skipped", "ledger", l.name, "from", next, "to", id-1)
		l.idx.addLost(id)
	default:
		log.Error("duplicate journal record ignored", "ledger", l.name, "entry", id, "segment", seq)
		return
	}
	l.idx.add(id, seq, loc)
}

// finishRecovery derives the ledger's counters from its rebuilt index.
func (l *ledgerState) finishRecovery() {
	if l.idx.n == 0 {
		l.idx.reset(l.first)
	}
	// Entries lost to damage at the end of the ledger leave no trace in the
	// journal; a cursor that acknowledged them does. Their ids must not be
	// handed out again: the subscription would skip the new entries.
	// A cursor far beyond the end is not damage but a bad state: ignored
	// rather than paid for with 8 bytes of index per skipped id.
	if seen := l.highestAcked(); seen >= l.idx.next() {
		if seen-l.idx.next() < maxLostFill {
			l.s.log.Error("cursors acknowledged entries the journal lacks; their ids are skipped",
				"ledger", l.name, "from", l.idx.next(), "to", seen)
			l.idx.addLost(seen + 1)
		} else {
			l.s.log.Error("cursor acknowledged ids far beyond the end of the ledger; ignored",
				"ledger", l.name, "last", l.idx.next()-1, "acknowledged", seen)
		}
	}
	l.last = l.idx.next() - 1
	l.next = l.last + 1
	l.idx.forEach(func(loc location) {
		if loc.size != lostSize {
			l.size += int64(loc.size)
			l.count++
		}
	})
}

const maxLostFill = 1 << 20

// highestAcked returns the highest entry id any cursor acknowledged, -1 if none.
func (l *ledgerState) highestAcked() int64 {
	h := int64(-1)
	for _, b := range l.cursors {
		var c ledger.CursorState
		if c.UnmarshalBinary(b) == nil {
			h = max(h, c.HighestAcked())
		}
	}
	return h
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
		return nil, err
	}
	r.bufOff = off
	return r.buf[:n], nil
}
