package local

import (
	"encoding/binary"
	"hash/crc32"
)

// A journal segment starts with a segment header, written twice so that one
// damaged byte cannot take the segment's salt with it, then holds records.
//
// Segment header copy (32 bytes, each of the two):
//
//	offset size field
//	0      4    magic "MBJS"
//	4      2    format version (2)
//	6      2    reserved, zero
//	8      8    segment sequence number (the file name's)
//	16     8    journal salt
//	24     4    where the records of the previous segment end (0: unknown)
//	28     4    crc32c (Castagnoli) of bytes 0..28
//
// Record (40-byte header, then the entry data):
//
//	0      4    magic "MBJR", or "MBJG" for the first record of a write
//	4      4    data length
//	8      8    segment sequence number
//	16     8    ledger id (ledger.Ledger.ID)
//	24     8    entry id
//	32     4    crc32c of the data
//	36     4    crc32c of bytes 0..36, seeded with the journal salt
//
// All integers are little endian. The header checksum makes a header
// trustworthy on its own: its length says where the next record starts even
// when the data is damaged (the entry is lost, nothing else), and recovery can
// resynchronise after damaged bytes by looking for the next header that
// checks. The segment number in it rejects the records a recycled segment
// still holds from its earlier life. The salt, random per journal and never
// seen by clients, is what keeps a payload crafted to look like a record from
// ever being taken for one: without it the header checksum cannot be made to
// match. A write (one group commit) starts with an "MBJG" record: everything
// before it was synced before it was written, so in the last segment only
// the records from the last "MBJG" on can be a torn write. The previous
// segment's end, in the next segment's header, tells
// recovery where a sealed segment's records end: unreadable bytes before it
// are damage, bytes after it are filler. The data checksum is computed
// outside any lock, before ids are assigned.
const (
	recordHeaderSize  = 40
	segmentHeaderCopy = 32
	segmentHeaderSize = 2 * segmentHeaderCopy
	formatVersion     = 2
	// MaxEntrySize is the largest entry Append accepts.
	MaxEntrySize = 256 << 20
	// maxSegmentSize keeps record offsets within uint32 (a segment holds up to
	// SegmentSize plus one record).
	maxSegmentSize = 1 << 30
)

var (
	recordMagic  = [4]byte{'M', 'B', 'J', 'R'}
	groupMagic   = [4]byte{'M', 'B', 'J', 'G'} // the first record of a write
	magicPrefix  = recordMagic[:3]
	segmentMagic = [4]byte{'M', 'B', 'J', 'S'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// dataChecksum is the record's data checksum.
func dataChecksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// saltSeed is the initial value of record header checksums under salt.
func saltSeed(salt uint64) uint32 {
	return crc32.Update(0, castagnoli, binary.LittleEndian.AppendUint64(nil, salt))
}

// controlLedger is the ledger id of the journal's own records (an empty
// write that ends a clean close); no ledger has a negative id.
const controlLedger = -1

// recordHeader is the decoded header of a record.
type recordHeader struct {
	group   bool // the first record of a write
	size    uint32
	seq     uint64
	ledger  int64
	entry   int64
	dataCRC uint32
}

// appendRecord appends the record of one entry to buf; dataCRC is
// dataChecksum(data) and seed saltSeed of the journal's salt; group marks
// the first record of a write.
func appendRecord(buf []byte, seed uint32, group bool, seq uint64, ledgerID, entryID int64, data []byte, dataCRC uint32) []byte {
	// Built in place: a local array would escape through the checksum
	// function and cost an allocation per entry.
	n := len(buf)
	if group {
		buf = append(buf, groupMagic[:]...)
	} else {
		buf = append(buf, recordMagic[:]...)
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(data)))
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(ledgerID))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(entryID))
	buf = binary.LittleEndian.AppendUint32(buf, dataCRC)
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Update(seed, castagnoli, buf[n:n+36]))
	return append(buf, data...)
}

// decodeHeader decodes a record header and reports whether it is one: the
// magic and the header checksum under seed match. The segment number is
// the caller's to check.
func decodeHeader(b []byte, seed uint32) (recordHeader, bool) {
	m := [4]byte(b[0:4])
	if (m != recordMagic && m != groupMagic) || crc32.Update(seed, castagnoli, b[:36]) != binary.LittleEndian.Uint32(b[36:]) {
		return recordHeader{}, false
	}
	return recordHeader{
		group:   m == groupMagic,
		size:    binary.LittleEndian.Uint32(b[4:]),
		seq:     binary.LittleEndian.Uint64(b[8:]),
		ledger:  int64(binary.LittleEndian.Uint64(b[16:])),
		entry:   int64(binary.LittleEndian.Uint64(b[24:])),
		dataCRC: binary.LittleEndian.Uint32(b[32:]),
	}, true
}

// dataValid reports whether data matches the header's data checksum.
func (h recordHeader) dataValid(data []byte) bool { return dataChecksum(data) == h.dataCRC }

// appendSegmentHeader appends both copies of a segment's header to buf.
func appendSegmentHeader(buf []byte, seq, salt uint64, prevEnd int64) []byte {
	for range 2 {
		n := len(buf)
		buf = append(buf, segmentMagic[:]...)
		buf = binary.LittleEndian.AppendUint16(buf, formatVersion)
		buf = binary.LittleEndian.AppendUint16(buf, 0)
		buf = binary.LittleEndian.AppendUint64(buf, seq)
		buf = binary.LittleEndian.AppendUint64(buf, salt)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(prevEnd))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf[n:n+28], castagnoli))
	}
	return buf
}

// segmentHeader is a decoded segment header copy.
type segmentHeader struct {
	version uint16
	seq     uint64
	salt    uint64
	prevEnd int64
}

// decodeSegmentHeader returns the first copy of b (segmentHeaderSize bytes or
// fewer) whose checksum matches.
func decodeSegmentHeader(b []byte) (segmentHeader, bool) {
	for off := 0; off+segmentHeaderCopy <= len(b) && off < segmentHeaderSize; off += segmentHeaderCopy {
		c := b[off : off+segmentHeaderCopy]
		if [4]byte(c[0:4]) != segmentMagic || crc32.Checksum(c[:28], castagnoli) != binary.LittleEndian.Uint32(c[28:]) {
			continue
		}
		return segmentHeader{
			version: binary.LittleEndian.Uint16(c[4:]),
			seq:     binary.LittleEndian.Uint64(c[8:]),
			salt:    binary.LittleEndian.Uint64(c[16:]),
			prevEnd: int64(binary.LittleEndian.Uint32(c[24:])),
		}, true
	}
	return segmentHeader{}, false
}
