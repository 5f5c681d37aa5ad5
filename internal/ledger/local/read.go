package local

import (
	"fmt"
	"io"

	"github.com/messagebus/messagebus/internal/ledger"
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

// readRecords fills the entries of out listed in reads (ascending ids) from the
// journal, reading neighbouring records with one ReadAt and verifying every
// record: a corrupt entry is an error, never returned as data.
func readRecords(l *ledgerState, out []ledger.Entry, reads []diskRead) error {
	defer releaseReads(l.s.segs, reads)
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
		buf := make([]byte, end-start)
		if n, err := seg.file.ReadAt(buf, start); n < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("ledger/local: %s: read segment %d at %d: %w", l.name, seg.seq, start, err)
		}
		for _, r := range reads[i:k] {
			rec := buf[int64(r.loc.off)-start:]
			h := decodeHeader(rec)
			id := out[r.pos].ID
			data := rec[recordHeaderSize : recordHeaderSize+int(r.loc.size) : recordHeaderSize+int(r.loc.size)]
			if h.size != r.loc.size || h.ledger != l.id || h.entry != id || !h.valid(rec, data) {
				return fmt.Errorf("ledger/local: %s: entry %d in segment %d at %d is corrupt", l.name, id, seg.seq, r.loc.off)
			}
			out[r.pos].Data = data
		}
		i = k
	}
	return nil
}
