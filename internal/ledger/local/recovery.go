package local

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// Recovery replays the journal at Open. Every segment is scanned whole
// (scan.go): every record whose header and data check is indexed; a record
// whose header checks but whose data does not is one lost entry, with its
// ledger and id known; bytes that are no record are skipped up to the next
// record that checks. What recovery could not read is damage when records
// follow it, or when the next segment's header says the records went
// further; it is logged at ERROR, counted (Store.Damage) and its entries are
// marked lost, so Read skips them and never serves them. Past the last
// record of the last segment is the end of the log: zeros, the filler of a
// recycled segment or a torn write from a crash (nothing after it was ever
// acknowledged). The last segment is truncated there and sealed: appends go to
// a new segment, so bytes of a write that never completed can never be
// followed by new records and read back as one.
//
// Ledger ids are never reused: the registry's last id is raised above every
// id the journal holds. Records of an id the registry neither knows nor
// recorded as deleted are quarantined: never attributed to a ledger, counted,
// logged, and the segments holding them are kept.

// recovered is what recovery learned besides the ledgers' indexes.
type recovered struct {
	maxLedger int64                    // highest ledger id in the journal
	seen      map[int64]bool           // ids of deleted ledgers with records
	orphans   map[int64]*orphanRecords // records of ledgers nobody knows
}

type orphanRecords struct {
	count    int64
	segments map[uint64]bool
}

// recover rebuilds the indexes of byID (ledgers by id, their trim points set)
// from the journal, opens the active segment and records the journal's
// format in the registry.
func (s *Store) recover(byID map[int64]*ledgerState, st *registryState) error {
	names, err := s.fs.List(s.journalDir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		} else if strings.HasSuffix(name, spareSuffix) {
			if s.readOnly {
				continue
			}
			if err := s.recoverSpare(name); err != nil {
				return err
			}
		} else {
			s.log.Warn("unexpected file in journal directory", "file", name)
		}
	}
	slices.Sort(seqs)
	files := make([]vfs.File, len(seqs))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	headers := make(map[uint64]segmentHeader, len(seqs))
	for i, seq := range seqs {
		if files[i], err = s.fs.Open(segmentName(s.journalDir, seq)); err != nil {
			return err
		}
		if h, ok := readSegmentHeader(files[i]); ok && h.seq == seq {
			headers[seq] = h
		}
	}
	salt, err := s.journalSalt(seqs, headers, st)
	if err != nil {
		return err
	}
	j := s.journal
	j.salt, j.seed = salt, saltSeed(salt)
	rec := &recovered{maxLedger: -1, seen: map[int64]bool{}, orphans: map[int64]*orphanRecords{}}
	for i, seq := range seqs {
		last := i == len(seqs)-1
		end, err := s.replaySegment(seq, files[i], headers[seq+1].prevEnd, last, byID, st.deleted, rec)
		if err != nil {
			return fmt.Errorf("segment %d: %w", seq, err)
		}
		seg := s.segs.add(seq, files[i])
		files[i] = nil
		if last {
			j.active, j.activeSize = seg, end
		}
	}
	if j.active == nil {
		// roll creates active.seq+1: start the numbering at 1.
		j.active = &segment{}
	}
	if !s.readOnly {
		if err := j.roll(); err != nil {
			return err
		}
	}
	for _, l := range byID {
		l.finishRecovery()
		rec.maxLedger = max(rec.maxLedger, l.id)
	}
	for id := range st.trims {
		rec.maxLedger = max(rec.maxLedger, id)
	}
	for id := range st.cursors {
		rec.maxLedger = max(rec.maxLedger, id)
	}
	for id := range st.deleted {
		rec.maxLedger = max(rec.maxLedger, id)
	}
	s.quarantine(rec)
	if s.readOnly {
		return nil
	}
	if err := s.reg.setFormat(salt, rec.maxLedger); err != nil {
		return err
	}
	var gone []int64
	for id := range st.deleted {
		if !rec.seen[id] {
			gone = append(gone, id)
		}
	}
	return s.reg.dropTombstones(gone)
}

// msgTornTail reports the bytes after the last record of the last segment.
const msgTornTail = "torn journal tail truncated"

// errOldFormat refuses a data directory written before journal format 2.
var errOldFormat = errors.New("the journal was written by an older MessageBus (format 1, no record magic or salt); this version reads format 2 only: drain its topics with the old version, then start with an empty --data-dir")

// journalSalt returns the journal's salt: the one its segment headers carry
// (the registry's copy may have been lost or restored), else the registry's,
// else a new one for a new journal.
func (s *Store) journalSalt(seqs []uint64, headers map[uint64]segmentHeader, st *registryState) (uint64, error) {
	for _, seq := range seqs {
		if h, ok := headers[seq]; ok {
			if h.version != formatVersion {
				return 0, fmt.Errorf("segment %d has format version %d, want %d", seq, h.version, formatVersion)
			}
			if st.salt != 0 && st.salt != h.salt {
				s.log.Warn("journal salt in the index differs from the segments'; the segments' is used", "segment", seq)
			}
			return h.salt, nil
		}
	}
	if st.version == 0 && st.salt == 0 && (len(st.ledgers) > 0 || len(st.trims) > 0) && len(seqs) > 0 {
		return 0, errOldFormat
	}
	if st.salt != 0 {
		return st.salt, nil
	}
	var b [8]byte
	for binary.LittleEndian.Uint64(b[:]) == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// replaySegment indexes the records of one segment, reports what it could not
// read and returns where its records end. knownEnd is where the next
// segment's header says they end (0: unknown).
func (s *Store) replaySegment(seq uint64, f vfs.File, knownEnd int64, last bool, byID map[int64]*ledgerState, deleted map[int64]bool, rec *recovered) (int64, error) {
	name := segmentName(s.journalDir, seq)
	sc, err := scanSegment(f, seq, s.journal.seed, knownEnd, last, func(h recordHeader, off int64, dataOK bool) {
		rec.maxLedger = max(rec.maxLedger, h.ledger)
		l := byID[h.ledger]
		switch {
		case h.ledger == controlLedger:
		case l == nil && deleted[h.ledger]:
			rec.seen[h.ledger] = true
		case l == nil:
			o := rec.orphans[h.ledger]
			if o == nil {
				o = &orphanRecords{segments: map[uint64]bool{}}
				rec.orphans[h.ledger] = o
			}
			o.count++
			o.segments[seq] = true
		case !dataOK:
			s.damage.record(s.log, "journal record data damaged: entry lost",
				"file", name, "offset", off, "bytes", recordHeaderSize+int64(h.size), "ledger", l.name, "ledger_id", l.id, "entry", h.entry)
			l.replay(h.entry, seq, location{off: uint32(off), size: lostSize})
		default:
			l.replay(h.entry, seq, location{off: uint32(off), size: h.size})
		}
	})
	if err != nil {
		return 0, err
	}
	rec.maxLedger = max(rec.maxLedger, sc.maxLedger)
	if sc.end > 0 && !sc.headerOK {
		s.damage.record(s.log, "journal segment header damaged", "file", name, "offset", 0)
	}
	for _, r := range sc.damaged {
		s.damage.record(s.log, "journal bytes damaged: skipped to the next record that checks; the entries they held are reported as lost",
			"file", name, "offset", r.off, "bytes", r.len)
	}
	if !last {
		switch {
		case knownEnd > sc.size:
			s.damage.record(s.log, "journal segment truncated: its records went on to the offset the next segment records; the entries they held are reported as lost",
				"file", name, "size", sc.size, "records_end", knownEnd, "unreadable_from", sc.end)
		case knownEnd > sc.end:
			s.damage.record(s.log, "journal bytes damaged at the end of a sealed segment; the entries they held are reported as lost",
				"file", name, "offset", sc.end, "bytes", knownEnd-sc.end)
		case knownEnd == 0 && sc.tailDirty:
			// A sealed segment's records end with a zero header or the
			// end of the file: anything else after them is damage.
			s.damage.record(s.log, "journal bytes damaged after the last readable record of a sealed segment; the entries they held are reported as lost",
				"file", name, "offset", sc.end, "bytes", sc.size-sc.end)
		}
		return sc.end, nil
	}
	if sc.end == sc.size {
		return sc.end, nil
	}
	if sc.tailDirty {
		s.log.Warn(msgTornTail, "file", name, "offset", sc.end, "bytes", sc.size-sc.end)
	}
	if s.readOnly {
		return sc.end, nil
	}
	if err := f.Truncate(sc.end); err != nil {
		return 0, fmt.Errorf("truncate torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync truncated segment: %w", err)
	}
	return sc.end, nil
}

// quarantine reports the records of unknown ledgers and keeps the segments
// holding them.
func (s *Store) quarantine(rec *recovered) {
	for id, o := range rec.orphans {
		segs := make([]uint64, 0, len(o.segments))
		for seq := range o.segments {
			segs = append(segs, seq)
			s.quarantined[seq] = true
		}
		slices.Sort(segs)
		s.damage.quarantined.Add(o.count)
		s.log.Error("journal records of a ledger the index does not know: quarantined, never served; their segments are kept",
			"ledger_id", id, "records", o.count, "segments", segs)
	}
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

// replay indexes one record of the ledger found by recovery. Until
// finishRecovery, l.first holds the persisted trim point.
func (l *ledgerState) replay(id int64, seq uint64, loc location) {
	if id < l.first {
		return // trimmed
	}
	log := l.s.log
	if l.idx.n == 0 {
		if id > l.first {
			if n := id - l.first - l.refusedIn(l.first, id); n > 0 {
				l.s.damage.lose(log, "journal lacks the first entries of a ledger; they are skipped",
					n, "ledger", l.name, "ledger_id", l.id, "from", l.first, "to", id-1)
			}
			l.first = id
		}
		l.add(id, seq, loc)
		return
	}
	switch next := l.idx.next(); {
	case id == next:
	case id > next:
		// Ids refused when the disk was full were never stored: skipped,
		// not lost.
		if n := id - next - l.refusedIn(next, id); n > 0 {
			l.s.damage.lose(log, "journal lacks entries of a ledger; they are skipped",
				n, "ledger", l.name, "ledger_id", l.id, "from", next, "to", id-1)
			l.lost += n
		}
		l.idx.addLost(id)
	default:
		log.Error("duplicate journal record ignored", "ledger", l.name, "entry", id, "segment", seq)
		return
	}
	l.add(id, seq, loc)
}

// add indexes a replayed record, counting it when it is lost.
func (l *ledgerState) add(id int64, seq uint64, loc location) {
	if loc.size == lostSize {
		l.lost++
		l.s.damage.lost.Add(1)
	}
	l.idx.add(id, seq, loc)
}

// finishRecovery derives the ledger's counters from its rebuilt index.
func (l *ledgerState) finishRecovery() {
	if l.idx.n == 0 {
		l.idx.reset(l.first)
	}
	// Entries lost to damage at the end of the ledger leave no trace in the
	// journal; the high-water mark of the last cursor flush does, and a
	// cursor that acknowledged them. Their ids must not be handed out again:
	// message ids given to producers would name other messages, and
	// subscriptions would skip the new entries. A cursor far beyond the end
	// is not damage but a bad state: ignored rather than paid for with 8
	// bytes of index per skipped id.
	if seen := max(l.highestAcked(), l.savedNext-1); seen >= l.idx.next() {
		if seen-l.idx.next() < maxLostFill {
			n := seen + 1 - l.idx.next()
			l.s.damage.lose(l.s.log, "journal lacks the last entries of a ledger (its high-water mark or cursors are above them); their ids are skipped",
				n, "ledger", l.name, "ledger_id", l.id, "from", l.idx.next(), "to", seen)
			l.lost += n
			l.idx.addLost(seen + 1)
		} else {
			l.s.log.Error("high-water mark or cursor far beyond the end of the ledger; ignored",
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
