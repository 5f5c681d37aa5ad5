package local

import (
	"fmt"
	"strings"
	"testing"
)

// dumpJournal describes the records of one ledger in the journal, segment by
// segment, as runs of ids: for failure messages.
func dumpJournal(t *testing.T, s *Store, ledgerID int64) string {
	var b strings.Builder
	names, _ := s.fs.List(s.journalDir)
	for _, name := range names {
		seq, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		f, err := s.fs.Open(segmentName(s.journalDir, seq))
		if err != nil {
			fmt.Fprintf(&b, "%d: %v\n", seq, err)
			continue
		}
		size, _ := f.Size()
		r := segmentReader{f: f, size: size}
		var off int64
		var runs []string
		lo, hi := int64(-1), int64(-1)
		for off+recordHeaderSize <= size {
			hdr, err := r.bytes(off, recordHeaderSize)
			if err != nil {
				break
			}
			h := decodeHeader(hdr)
			if int64(h.size) > size-off-recordHeaderSize {
				break
			}
			if h.ledger == ledgerID {
				if h.entry == hi+1 && lo >= 0 {
					hi++
				} else {
					if lo >= 0 {
						runs = append(runs, fmt.Sprintf("%d-%d", lo, hi))
					}
					lo, hi = h.entry, h.entry
				}
			}
			off += recordHeaderSize + int64(h.size)
		}
		if lo >= 0 {
			runs = append(runs, fmt.Sprintf("%d-%d", lo, hi))
		}
		fmt.Fprintf(&b, "segment %d (%d bytes, scanned %d): %v\n", seq, size, off, runs)
		f.Close()
	}
	return b.String()
}
