package local

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// Journal segments are files named by their sequence number, in order of
// creation: journal/00000000000000000001.log, ...
const segmentSuffix = ".log"

func segmentName(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", seq, segmentSuffix))
}

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, err == nil
}

// segment is one open journal file. Readers hold a reference while they read
// so that deleting the segment never closes the file under them.
type segment struct {
	seq  uint64
	file vfs.File
	refs int  // guarded by segmentSet.mu; 1 for the set itself
	gone bool // removed from the set; closed when refs drops to 0

	// bg is a second handle for background reads (offloads, compactions),
	// opened at the first one, without readahead (vfs.RandomAccess).
	bgOnce sync.Once
	bg     vfs.File
}

// close closes the segment's handles.
func (seg *segment) close() {
	seg.file.Close()
	if seg.bg != nil {
		seg.bg.Close()
	}
}

// segmentSet holds the open segments by sequence number.
type segmentSet struct {
	mu sync.Mutex
	m  map[uint64]*segment
	// fs and dir open background handles; nil fs: background reads use
	// the segment's own handle.
	fs  vfs.FS
	dir string
}

// background returns the handle background reads of seg (held by the
// caller) go through: a handle of its own, so that telling the system not
// to read ahead does not take readahead from consumers catching up; the
// segment's own handle when that cannot be opened.
func (s *segmentSet) background(seg *segment) vfs.File {
	seg.bgOnce.Do(func() {
		if s.fs == nil {
			return
		}
		f, err := s.fs.Open(segmentName(s.dir, seg.seq))
		if err != nil {
			return
		}
		if ra, ok := f.(vfs.RandomAccess); ok {
			_ = ra.AdviseRandom() // without it, reads still go in small steps
		}
		seg.bg = f
	})
	if seg.bg == nil {
		return seg.file
	}
	return seg.bg
}

func (s *segmentSet) add(seq uint64, f vfs.File) *segment {
	seg := &segment{seq: seq, file: f, refs: 1}
	s.mu.Lock()
	s.m[seq] = seg
	s.mu.Unlock()
	return seg
}

// acquire returns segment seq with a reference, nil when it is not in the set.
func (s *segmentSet) acquire(seq uint64) *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.m[seq]
	if seg != nil {
		seg.refs++
	}
	return seg
}

func (s *segmentSet) release(seg *segment) {
	s.mu.Lock()
	seg.refs--
	closeIt := seg.refs == 0
	s.mu.Unlock()
	if closeIt {
		seg.close()
	}
}

// remove takes seq out of the set; the file is closed once unreferenced.
func (s *segmentSet) remove(seq uint64) {
	s.mu.Lock()
	seg := s.m[seq]
	if seg == nil || seg.gone {
		s.mu.Unlock()
		return
	}
	delete(s.m, seq)
	seg.gone = true
	s.mu.Unlock()
	s.release(seg)
}

// detach takes seq out of the set and returns its file, open, when nothing
// else holds a reference to it; otherwise it changes nothing and returns nil.
func (s *segmentSet) detach(seq uint64) vfs.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.m[seq]
	if seg == nil || seg.gone || seg.refs != 1 {
		return nil
	}
	delete(s.m, seq)
	seg.gone, seg.refs = true, 0
	if seg.bg != nil { // the file is about to be renamed and rewritten
		seg.bg.Close()
	}
	return seg.file
}

// seqs returns the sequence numbers in the set.
func (s *segmentSet) seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint64, 0, len(s.m))
	for seq := range s.m {
		out = append(out, seq)
	}
	return out
}

// closeAll closes every segment (at Store close, when no reader is left).
func (s *segmentSet) closeAll() {
	for _, seq := range s.seqs() {
		s.remove(seq)
	}
}
