package local

import (
	"maps"
	"slices"
)

// A sealed journal segment is deleted once no ledger has an entry in it that
// is not trimmed: every ledger's index lists the segments its remaining
// entries span, so a segment in no list holds only trimmed entries and
// records of deleted ledgers. The janitor goroutine checks after each Trim
// that emptied a segment for a ledger, each Delete and each roll-over.

func (s *Store) kickJanitor() { kick(s.janitorKick) }

// kick wakes a background loop without waiting: a kick already pending
// covers this one.
func kick(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onKick runs fn after each kick of ch until the store closes. Run it as a
// goroutine counted in s.bg.
func (s *Store) onKick(ch <-chan struct{}, fn func()) {
	defer s.bg.Done()
	for {
		select {
		case <-ch:
			fn()
		case <-s.stopBg:
			return
		}
	}
}

// recycle makes dead segment seq the journal's spare, when it needs one and
// the file is about a segment's size and unread, and reports whether it did.
// Its blocks are allocated and written, so overwriting it is as cheap as
// overwriting zeros, without the zero-fill.
func (s *Store) recycle(seq uint64) bool {
	j := s.journal
	if !j.prealloc || j.hasSpare() {
		return false
	}
	seg := s.segs.acquire(seq)
	if seg == nil {
		return false
	}
	size, err := seg.file.Size()
	s.segs.release(seg)
	if err != nil || size < j.segSize*3/4 {
		return false // too short to be worth it: deleted as usual
	}
	f := s.segs.detach(seq)
	if f == nil {
		return false
	}
	name := segmentName(s.journalDir, seq)
	spare := j.newSpareName(recycledPrefix)
	if err := s.fs.Rename(name, spare); err != nil {
		s.log.Error("recycle journal segment", "segment", seq, "err", err)
		f.Close()
		return true // out of the set; a restart deletes it
	}
	if !j.offerSpare(spareFile{f: f, name: spare, recycled: true}) {
		f.Close()
		if err := s.fs.Remove(spare); err != nil {
			s.log.Error("delete journal segment", "segment", seq, "err", err)
		}
	}
	return true
}

// collectSegments deletes the segments no ledger needs, or recycles one as
// the journal's next segment.
func (s *Store) collectSegments() {
	s.janitorMu.Lock()
	defer s.janitorMu.Unlock()
	// Below the watermark every record is published, so the indexes know
	// about all of it; the active segment is always at or above it.
	watermark := s.journal.published.Load()
	live := maps.Clone(s.quarantined)
	for _, l := range s.snapshot() {
		l.mu.Lock()
		l.idx.segments(func(seq uint64) { live[seq] = true })
		l.mu.Unlock()
	}
	var dead []uint64
	for _, seq := range s.segs.seqs() {
		if seq < watermark && !live[seq] {
			dead = append(dead, seq)
		}
	}
	if len(dead) == 0 {
		return
	}
	// Trim points first: after a restart, a ledger whose entries are all gone
	// still knows where its ids continue.
	if err := s.flush(); err != nil {
		s.log.Error("segment deletion postponed", "err", err)
		return
	}
	slices.Sort(dead)
	for _, seq := range dead {
		if s.recycle(seq) {
			continue
		}
		s.segs.remove(seq)
		if err := s.fs.Remove(segmentName(s.journalDir, seq)); err != nil {
			s.log.Error("delete journal segment", "segment", seq, "err", err)
		}
	}
	if err := s.fs.SyncDir(s.journalDir); err != nil {
		s.log.Error("sync journal directory", "err", err)
	}
	s.log.Debug("deleted journal segments", "segments", dead)
}
