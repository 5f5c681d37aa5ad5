package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the Castagnoli CRC the protocol uses over metadata and payload.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32cTable) }

// hasMagic reports whether b starts with the given two-byte magic.
func hasMagic(b []byte, magic uint16) bool {
	return len(b) >= 2 && binary.BigEndian.Uint16(b) == magic
}

// skipBrokerEntryMetadata returns hp without its leading broker entry
// metadata block, or hp itself when there is none.
func skipBrokerEntryMetadata(hp []byte) ([]byte, error) {
	if !hasMagic(hp, MagicBrokerEntryMetadata) {
		return hp, nil
	}
	if len(hp) < 6 {
		return nil, fmt.Errorf("broker entry metadata header truncated at %d bytes: %w", len(hp), ErrMalformed)
	}
	size := uint64(binary.BigEndian.Uint32(hp[2:]))
	if size > uint64(len(hp)-6) {
		return nil, fmt.Errorf("broker entry metadata of %d bytes exceeds the %d left: %w", size, len(hp)-6, ErrMalformed)
	}
	return hp[6+size:], nil
}

// VerifyChecksum checks the crc32c of hp, skipping a leading broker entry
// metadata block. When hp carries no 0x0e01 magic it returns nil: clients
// older than protocol v6 send no checksum at all, and there is nothing to
// check. The result wraps ErrChecksum on a mismatch and ErrMalformed when the
// checksum header is truncated.
func VerifyChecksum(hp []byte) error {
	rest, err := skipBrokerEntryMetadata(hp)
	if err != nil {
		return err
	}
	if !hasMagic(rest, MagicCrc32c) {
		return nil
	}
	if len(rest) < 6 {
		return fmt.Errorf("checksum header truncated at %d bytes: %w", len(rest), ErrMalformed)
	}
	want := binary.BigEndian.Uint32(rest[2:])
	if got := crc32c(rest[6:]); got != want {
		return fmt.Errorf("received 0x%08x, computed 0x%08x: %w", want, got, ErrChecksum)
	}
	return nil
}

// SplitPayload returns the MessageMetadata bytes and the payload that follows
// them in hp, which may or may not start with broker entry metadata and the
// checksum block. It does not verify the checksum; both results alias hp.
func SplitPayload(hp []byte) (metadata, payload []byte, err error) {
	rest, err := skipBrokerEntryMetadata(hp)
	if err != nil {
		return nil, nil, err
	}
	if hasMagic(rest, MagicCrc32c) {
		if len(rest) < 6 {
			return nil, nil, fmt.Errorf("checksum header truncated at %d bytes: %w", len(rest), ErrMalformed)
		}
		rest = rest[6:]
	}
	if len(rest) < 4 {
		return nil, nil, fmt.Errorf("metadata size truncated at %d bytes: %w", len(rest), ErrMalformed)
	}
	size := uint64(binary.BigEndian.Uint32(rest))
	if size > uint64(len(rest)-4) {
		return nil, nil, fmt.Errorf("metadata of %d bytes exceeds the %d left: %w", size, len(rest)-4, ErrMalformed)
	}
	end := 4 + int(size)
	return rest[4:end:end], rest[end:len(rest):len(rest)], nil
}

// StoredChecksum returns the crc32c that hp carries over its metadata size,
// metadata and payload (after any broker entry metadata); ok is false when
// hp carries none.
func StoredChecksum(hp []byte) (crc uint32, ok bool) {
	rest, err := skipBrokerEntryMetadata(hp)
	if err != nil || !hasMagic(rest, MagicCrc32c) || len(rest) < 6 {
		return 0, false
	}
	return binary.BigEndian.Uint32(rest[2:]), true
}

// ReplacePrefixChecksum returns the crc32c of newPrefix+payload from
// whole, the crc32c of oldPrefix+payload, without reading the payload,
// only its length: CRCs are linear, crc(A+P) = shift(crc(A), len(P)) xor
// crc(P) (zlib's crc32_combine), so the payload's part cancels out. It costs
// about a microsecond whatever the payload's length.
func ReplacePrefixChecksum(whole uint32, oldPrefix, newPrefix []byte, payloadLen int) uint32 {
	d := crc32c(oldPrefix) ^ crc32c(newPrefix)
	return whole ^ gfMultModP(x2nModP(uint64(payloadLen), 3), d)
}

// crc32cPoly is the Castagnoli polynomial, bit-reversed as hash/crc32 uses it.
const crc32cPoly = 0x82f63b78

// gfMultModP multiplies a and b modulo the CRC polynomial (reflected bit
// order: x^0 is the top bit), as zlib's multmodp.
func gfMultModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32cPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable holds x^(2^k) modulo the polynomial for k < 32.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = gfMultModP(p, p)
	}
	return t
}()

// x2nModP returns x^(n*2^k) modulo the polynomial, as zlib's x2nmodp: with
// k = 3, the shift of a CRC over n bytes.
func x2nModP(n uint64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = gfMultModP(x2nTable[k&31], p)
		}
		k++
	}
	return p
}
