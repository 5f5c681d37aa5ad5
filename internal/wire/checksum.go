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
