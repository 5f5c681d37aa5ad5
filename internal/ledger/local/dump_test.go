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
		var runs []string
		lo, hi := int64(-1), int64(-1)
		sc, err := scanSegment(f, seq, s.journal.seed, 0, false, func(h recordHeader, _ int64, _ bool) {
			if h.ledger != ledgerID {
				return
			}
			if h.entry == hi+1 && lo >= 0 {
				hi++
				return
			}
			if lo >= 0 {
				runs = append(runs, fmt.Sprintf("%d-%d", lo, hi))
			}
			lo, hi = h.entry, h.entry
		})
		if lo >= 0 {
			runs = append(runs, fmt.Sprintf("%d-%d", lo, hi))
		}
		fmt.Fprintf(&b, "segment %d (%d bytes, records end at %d, damaged %v, err %v): %v\n", seq, sc.size, sc.end, sc.damaged, err, runs)
		f.Close()
	}
	return b.String()
}
