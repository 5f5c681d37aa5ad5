package local

import (
	"encoding/binary"
	"hash/crc32"
)

// A journal record is a 24-byte header followed by the entry data:
//
//	offset size field
//	0      4    crc32c (Castagnoli) of the data followed by header bytes 4..24
//	4      4    data length
//	8      8    ledger id (ledger.Ledger.ID)
//	16     8    entry id
//
// All integers are little endian. The checksum covers the data first so that
// Append can compute that part outside any lock, before ids are assigned.
const (
	recordHeaderSize = 24
	// MaxEntrySize is the largest entry Append accepts.
	MaxEntrySize = 256 << 20
	// maxSegmentSize keeps record offsets within uint32 (a segment holds up to
	// SegmentSize plus one record).
	maxSegmentSize = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// dataChecksum is the first part of a record checksum.
func dataChecksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// recordHeader is the decoded header of a record.
type recordHeader struct {
	crc    uint32
	size   uint32
	ledger int64
	entry  int64
}

// appendRecord appends the record of one entry to buf; dataCRC is
// dataChecksum(data).
func appendRecord(buf []byte, ledgerID, entryID int64, data []byte, dataCRC uint32) []byte {
	// The header is built in place: a local array would escape through the
	// checksum function and cost an allocation per entry.
	n := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, 0)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(data)))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(ledgerID))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(entryID))
	binary.LittleEndian.PutUint32(buf[n:], crc32.Update(dataCRC, castagnoli, buf[n+4:]))
	return append(buf, data...)
}

func decodeHeader(b []byte) recordHeader {
	return recordHeader{
		crc:    binary.LittleEndian.Uint32(b[0:]),
		size:   binary.LittleEndian.Uint32(b[4:]),
		ledger: int64(binary.LittleEndian.Uint64(b[8:])),
		entry:  int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

// valid reports whether data (the record's payload) matches the header
// checksum; hdr is the raw header.
func (h recordHeader) valid(hdr, data []byte) bool {
	return crc32.Update(dataChecksum(data), castagnoli, hdr[4:recordHeaderSize]) == h.crc
}
