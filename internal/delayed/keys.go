package delayed

import (
	"encoding/binary"
	"math"
)

// Key layout in the Pebble database (all integers fixed-width big endian,
// signed ones with the sign bit flipped so that byte order is numeric order):
//
//	"n"                              last index id handed out (uint64)
//	"m" uvarint(len(topic)) topic sub  index record: id(8) epoch(8) flags(1)
//	"c" id(8)                        entry count of the index (uint64, an estimate)
//	"d" id(8) due(8) entry(8)        one delayed entry; empty value
//
// Data keys are 25 bytes and ordered by (index, due time, entry id), so the
// entries of an index due first are a range scan from its prefix, and a
// whole index is deleted with one range tombstone. Sstable prefix
// compression and block compression keep them small on disk; the in-memory
// window holds 16 bytes per entry.
//
// Index ids are never reused (the "n" counter only grows), so data left
// behind by a removed index can never be mistaken for another's.
const (
	prefixData   = 'd'
	prefixMeta   = 'm'
	prefixCount  = 'c'
	dataKeyLen   = 1 + 8 + 8 + 8
	dataPrefLen  = 1 + 8
	metaValueLen = 8 + 8 + 1
	flagTemp     = 1
)

var keyLastID = []byte("n")

// key is one delayed entry: due time (unix milliseconds) then entry id.
type key struct{ at, id int64 }

var minKey = key{math.MinInt64, math.MinInt64}

func (a key) less(b key) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// ordered maps a signed integer to an unsigned one with the same order.
func ordered(v int64) uint64   { return uint64(v) ^ (1 << 63) }
func unordered(u uint64) int64 { return int64(u ^ (1 << 63)) }

func appendDataPrefix(dst []byte, id uint64) []byte {
	dst = append(dst, prefixData)
	return binary.BigEndian.AppendUint64(dst, id)
}

func appendDataKey(dst []byte, id uint64, k key) []byte {
	dst = appendDataPrefix(dst, id)
	dst = binary.BigEndian.AppendUint64(dst, ordered(k.at))
	return binary.BigEndian.AppendUint64(dst, ordered(k.id))
}

// decodeDataKey returns the index id and entry of a data key.
func decodeDataKey(b []byte) (uint64, key, bool) {
	if len(b) != dataKeyLen || b[0] != prefixData {
		return 0, key{}, false
	}
	return binary.BigEndian.Uint64(b[1:]), key{
		at: unordered(binary.BigEndian.Uint64(b[9:])),
		id: unordered(binary.BigEndian.Uint64(b[17:])),
	}, true
}

func countKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCount}, id)
}

func metaKey(n Name) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(n.Topic)+len(n.Subscription))
	b = append(b, prefixMeta)
	b = binary.AppendUvarint(b, uint64(len(n.Topic)))
	b = append(b, n.Topic...)
	return append(b, n.Subscription...)
}

func decodeMetaKey(b []byte) (Name, bool) {
	if len(b) < 2 || b[0] != prefixMeta {
		return Name{}, false
	}
	l, n := binary.Uvarint(b[1:])
	if n <= 0 || uint64(len(b)-1-n) < l {
		return Name{}, false
	}
	rest := b[1+n:]
	return Name{Topic: string(rest[:l]), Subscription: string(rest[l:])}, true
}

// record is what the store keeps about one index.
type record struct {
	id        uint64
	epoch     int64
	temporary bool
}

func (r record) encode() []byte {
	b := make([]byte, 0, metaValueLen)
	b = binary.BigEndian.AppendUint64(b, r.id)
	b = binary.BigEndian.AppendUint64(b, ordered(r.epoch))
	var f byte
	if r.temporary {
		f |= flagTemp
	}
	return append(b, f)
}

func decodeRecord(b []byte) (record, bool) {
	if len(b) != metaValueLen {
		return record{}, false
	}
	return record{
		id:        binary.BigEndian.Uint64(b),
		epoch:     unordered(binary.BigEndian.Uint64(b[8:])),
		temporary: b[16]&flagTemp != 0,
	}, true
}

// satAdd is a+b without overflow (b >= 0).
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
