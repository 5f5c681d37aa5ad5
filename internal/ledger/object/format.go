// Package object encodes and reads segment objects: the entries of one
// contiguous entry-id range of one topic ledger, as stored in an object
// store by tiered storage (and later cluster mode). docs/tiered-storage.md
// describes the format; version 1 is:
//
//	header   32 B: magic "MBSO", version u16, flags u16 (0), ledger id i64,
//	         first entry id i64, last entry id i64
//	blocks   each a run of entries [entry id i64][size u32][data], in id order
//	         (ids may have gaps: entries lost locally are not stored)
//	index    block count u32, then per block: offset u64, length u32, first
//	         id i64, last id i64, entry count u32, CRC-32C of the block u32
//	trailer  24 B: index offset u64, index length u32, CRC-32C of the index
//	         u32, CRC-32C of the header u32, magic "MBSO"
//
// Integers are big-endian. Entry data is stored exactly as the broker
// stored it (client bytes untouched). A reader fetches the trailer, then the
// index, then only the blocks it needs (ranged reads), and verifies every
// checksum: a mismatch is an error, never data.
//
// The package also holds what every reader of object blocks shares: the
// Objects interface ledger backends reach an object store through, and the
// size-bounded BlockCache. It depends on ledger and objstore only, never on
// a ledger backend (tiered, cluster) that uses it.
package object

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"sort"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Version is the format version written.
const Version = 1

const (
	magic          = "MBSO"
	HeaderSize     = 32
	TrailerSize    = 24
	blockMetaSize  = 8 + 4 + 8 + 8 + 4 + 4
	entryHeadSize  = 8 + 4
	DefaultBlock   = 4 << 20
	maxIndexBlocks = 1 << 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("object: corrupt segment object")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Header identifies the range of a segment object.
type Header struct {
	LedgerID int64
	First    int64 // first entry id of the range
	Last     int64 // last entry id of the range
}

// BlockMeta is a block's entry in the index.
type BlockMeta struct {
	Off     int64
	Len     int64
	First   int64
	Last    int64
	Entries int
	CRC     uint32
}

// Index is the decoded footer of an object.
type Index struct {
	Header Header
	Blocks []BlockMeta
}

// Find returns the position of the first block holding an id >= id, or
// len(Blocks).
func (x *Index) Find(id int64) int {
	return sort.Search(len(x.Blocks), func(i int) bool { return x.Blocks[i].Last >= id })
}

// Encode builds the object of entries (ascending ids within [first, last])
// of ledger ledgerID, cutting blocks at about blockSize bytes (0: DefaultBlock).
func Encode(h Header, entries []ledger.Entry, blockSize int) ([]byte, error) {
	return EncodeTo(nil, h, entries, blockSize)
}

// EncodeTo is Encode into dst's storage when it is large enough (dst's
// contents are overwritten), so that an offload writing many objects does
// not allocate (and zero) a new buffer of tens of MiB for each.
func EncodeTo(dst []byte, h Header, entries []ledger.Entry, blockSize int) ([]byte, error) {
	if h.Last < h.First {
		return nil, fmt.Errorf("object: empty range %d-%d", h.First, h.Last)
	}
	size := HeaderSize + TrailerSize + 4
	for _, e := range entries {
		size += entryHeadSize + len(e.Data)
	}
	if blockSize <= 0 {
		blockSize = DefaultBlock
	}
	if need := size + blockMetaSize*(size/blockSize+1); cap(dst) < need {
		dst = make([]byte, 0, need+need/8) // room for a next object a little larger
	}
	enc := NewEncoder(dst, h.LedgerID, h.First, blockSize)
	for _, e := range entries {
		if e.ID > h.Last {
			return nil, fmt.Errorf("object: entry %d out of order or outside %d-%d", e.ID, h.First, h.Last)
		}
		if err := enc.Add(e.ID, e.Data); err != nil {
			return nil, err
		}
	}
	return enc.Finish(h.Last)
}

// Encoder builds an object entry by entry, so that an offload copies each
// entry it reads into the object at once instead of holding the entries
// until the object is complete.
type Encoder struct {
	buf       []byte
	h         Header
	blockSize int
	blocks    []BlockMeta
	cur       BlockMeta // the block being filled; Entries 0 when none
	prev      int64     // the last id added
}

// NewEncoder starts an object of ledger ledgerID whose range starts at
// first, in dst's storage (grown as needed; its contents are overwritten),
// cutting blocks at about blockSize bytes (0: DefaultBlock).
func NewEncoder(dst []byte, ledgerID, first int64, blockSize int) *Encoder {
	if blockSize <= 0 {
		blockSize = DefaultBlock
	}
	if cap(dst) < HeaderSize {
		dst = make([]byte, 0, 1<<20)
	}
	buf := dst[:HeaderSize]
	clear(buf)
	return &Encoder{buf: buf, h: Header{LedgerID: ledgerID, First: first}, blockSize: blockSize, prev: first - 1}
}

// Add appends entry id (greater than the previous one, and at least the
// range's first) with its data, which is copied.
func (e *Encoder) Add(id int64, data []byte) error {
	if id <= e.prev {
		return fmt.Errorf("object: entry %d out of order (after %d) or before the range's first %d", id, e.prev, e.h.First)
	}
	if e.cur.Entries > 0 && int64(len(e.buf))-e.cur.Off >= int64(e.blockSize) {
		e.closeBlock()
	}
	if e.cur.Entries == 0 {
		e.cur = BlockMeta{Off: int64(len(e.buf)), First: id}
	}
	e.prev = id
	e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(id))
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(data)))
	e.buf = append(e.buf, data...)
	e.cur.Last = id
	e.cur.Entries++
	return nil
}

func (e *Encoder) closeBlock() {
	b := e.cur
	b.Len = int64(len(e.buf)) - b.Off
	b.CRC = crc(e.buf[b.Off:])
	e.blocks = append(e.blocks, b)
	e.cur = BlockMeta{}
	// Copying and checksumming a block takes a millisecond or more: let
	// waiting goroutines (producers' appends) run between blocks.
	runtime.Gosched()
}

// Finish completes the object, whose range ends at last (at least the last
// id added), and returns it. The Encoder must not be used after.
func (e *Encoder) Finish(last int64) ([]byte, error) {
	if last < e.h.First || last < e.prev {
		return nil, fmt.Errorf("object: range %d-%d does not hold entry %d", e.h.First, last, e.prev)
	}
	if e.cur.Entries > 0 {
		e.closeBlock()
	}
	buf := e.buf
	copy(buf, magic)
	binary.BigEndian.PutUint16(buf[4:], Version)
	binary.BigEndian.PutUint64(buf[8:], uint64(e.h.LedgerID))
	binary.BigEndian.PutUint64(buf[16:], uint64(e.h.First))
	binary.BigEndian.PutUint64(buf[24:], uint64(last))
	indexOff := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(e.blocks)))
	for _, b := range e.blocks {
		buf = binary.BigEndian.AppendUint64(buf, uint64(b.Off))
		buf = binary.BigEndian.AppendUint32(buf, uint32(b.Len))
		buf = binary.BigEndian.AppendUint64(buf, uint64(b.First))
		buf = binary.BigEndian.AppendUint64(buf, uint64(b.Last))
		buf = binary.BigEndian.AppendUint32(buf, uint32(b.Entries))
		buf = binary.BigEndian.AppendUint32(buf, b.CRC)
	}
	indexLen := len(buf) - indexOff
	buf = binary.BigEndian.AppendUint64(buf, uint64(indexOff))
	buf = binary.BigEndian.AppendUint32(buf, uint32(indexLen))
	buf = binary.BigEndian.AppendUint32(buf, crc(buf[indexOff:indexOff+indexLen]))
	buf = binary.BigEndian.AppendUint32(buf, crc(buf[:HeaderSize]))
	buf = append(buf, magic...)
	e.buf = nil
	return buf, nil
}

// Trailer locates the index.
type Trailer struct {
	IndexOff  int64
	IndexLen  int64
	IndexCRC  uint32
	HeaderCRC uint32
}

// DecodeTrailer decodes the last TrailerSize bytes of an object of size
// objSize.
func DecodeTrailer(b []byte, objSize int64) (Trailer, error) {
	if len(b) != TrailerSize || string(b[20:]) != magic {
		return Trailer{}, corrupt("bad trailer")
	}
	t := Trailer{
		IndexOff:  int64(binary.BigEndian.Uint64(b)),
		IndexLen:  int64(binary.BigEndian.Uint32(b[8:])),
		IndexCRC:  binary.BigEndian.Uint32(b[12:]),
		HeaderCRC: binary.BigEndian.Uint32(b[16:]),
	}
	if t.IndexOff < HeaderSize || t.IndexLen < 4 || t.IndexOff+t.IndexLen != objSize-TrailerSize {
		return Trailer{}, corrupt("index at %d+%d in an object of %d bytes", t.IndexOff, t.IndexLen, objSize)
	}
	return t, nil
}

// DecodeIndex decodes the header and the index an object's trailer points
// to, checking both checksums and that blocks are in order inside the
// data area.
func DecodeIndex(header, index []byte, t Trailer) (*Index, error) {
	if len(header) != HeaderSize || string(header[:4]) != magic || crc(header) != t.HeaderCRC {
		return nil, corrupt("bad header")
	}
	if v := binary.BigEndian.Uint16(header[4:]); v != Version {
		return nil, corrupt("unsupported version %d", v)
	}
	x := &Index{Header: Header{
		LedgerID: int64(binary.BigEndian.Uint64(header[8:])),
		First:    int64(binary.BigEndian.Uint64(header[16:])),
		Last:     int64(binary.BigEndian.Uint64(header[24:])),
	}}
	if x.Header.Last < x.Header.First {
		return nil, corrupt("empty range %d-%d", x.Header.First, x.Header.Last)
	}
	if int64(len(index)) != t.IndexLen || crc(index) != t.IndexCRC {
		return nil, corrupt("index checksum mismatch")
	}
	n := binary.BigEndian.Uint32(index)
	if n > maxIndexBlocks || int64(len(index)) != 4+int64(n)*blockMetaSize {
		return nil, corrupt("index of %d bytes for %d blocks", len(index), n)
	}
	next, prev := int64(HeaderSize), x.Header.First-1
	for p := index[4:]; len(p) > 0; p = p[blockMetaSize:] {
		b := BlockMeta{
			Off:     int64(binary.BigEndian.Uint64(p)),
			Len:     int64(binary.BigEndian.Uint32(p[8:])),
			First:   int64(binary.BigEndian.Uint64(p[12:])),
			Last:    int64(binary.BigEndian.Uint64(p[20:])),
			Entries: int(binary.BigEndian.Uint32(p[28:])),
			CRC:     binary.BigEndian.Uint32(p[32:]),
		}
		if b.Off != next || b.Len < entryHeadSize || b.First <= prev || b.Last < b.First || b.Last > x.Header.Last ||
			b.Entries < 1 || int64(b.Entries) > b.Last-b.First+1 || int64(b.Entries)*entryHeadSize > b.Len {
			return nil, corrupt("bad index entry for block %d", len(x.Blocks))
		}
		next, prev = b.Off+b.Len, b.Last
		x.Blocks = append(x.Blocks, b)
	}
	if next != t.IndexOff {
		return nil, corrupt("blocks end at %d, index at %d", next, t.IndexOff)
	}
	return x, nil
}

// DecodeBlock verifies block b (its bytes as described by meta) and returns
// its entries; their Data alias b.
func DecodeBlock(b []byte, meta BlockMeta) ([]ledger.Entry, error) {
	if int64(len(b)) != meta.Len || crc(b) != meta.CRC {
		return nil, corrupt("block at %d: checksum mismatch", meta.Off)
	}
	out := make([]ledger.Entry, 0, meta.Entries)
	prev := meta.First - 1
	for len(b) > 0 {
		if len(b) < entryHeadSize {
			return nil, corrupt("block at %d: truncated entry", meta.Off)
		}
		id := int64(binary.BigEndian.Uint64(b))
		n := int64(binary.BigEndian.Uint32(b[8:]))
		if id <= prev || id > meta.Last || n > int64(len(b)-entryHeadSize) {
			return nil, corrupt("block at %d: bad entry %d", meta.Off, id)
		}
		out = append(out, ledger.Entry{ID: id, Data: b[entryHeadSize : entryHeadSize+n : entryHeadSize+n]})
		b = b[entryHeadSize+n:]
		prev = id
	}
	if len(out) != meta.Entries || out[0].ID != meta.First || prev != meta.Last {
		return nil, corrupt("block at %d: entries do not match the index", meta.Off)
	}
	return out, nil
}

// Decode decodes a whole object, verifying everything.
func Decode(obj []byte) (*Index, []ledger.Entry, error) {
	if len(obj) < HeaderSize+TrailerSize+4 {
		return nil, nil, corrupt("object of %d bytes", len(obj))
	}
	size := int64(len(obj))
	t, err := DecodeTrailer(obj[size-TrailerSize:], size)
	if err != nil {
		return nil, nil, err
	}
	x, err := DecodeIndex(obj[:HeaderSize], obj[t.IndexOff:t.IndexOff+t.IndexLen], t)
	if err != nil {
		return nil, nil, err
	}
	var out []ledger.Entry
	for _, b := range x.Blocks {
		es, err := DecodeBlock(obj[b.Off:b.Off+b.Len], b)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, es...)
	}
	return x, out, nil
}

// AppendBlock appends one block of entries (ascending ids) to buf, in the
// block format of segment objects, and returns buf and the block's metadata
// (Off is where it starts in buf). Cluster mode's WAL objects are runs of
// such blocks, one per topic, located by metadata kept outside the object.
func AppendBlock(buf []byte, entries []ledger.Entry) ([]byte, BlockMeta, error) {
	if len(entries) == 0 {
		return buf, BlockMeta{}, fmt.Errorf("object: empty block")
	}
	b := BlockMeta{Off: int64(len(buf)), First: entries[0].ID}
	prev := entries[0].ID - 1
	for _, e := range entries {
		if e.ID <= prev {
			return buf, BlockMeta{}, fmt.Errorf("object: entry %d out of order", e.ID)
		}
		prev = e.ID
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.ID))
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e.Data)))
		buf = append(buf, e.Data...)
		b.Last = e.ID
		b.Entries++
	}
	b.Len = int64(len(buf)) - b.Off
	b.CRC = crc(buf[b.Off:])
	return buf, b, nil
}
