package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Wire types under short names; the hand-written parsers switch on them.
const (
	wireVarint = protowire.VarintType
	wireBytes  = protowire.BytesType
)

// consumeTag reads a field tag, rejecting numbers proto.Unmarshal rejects.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, wt, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, fmt.Errorf("bad field tag: %v: %w", protowire.ParseError(n), ErrMalformed)
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fmt.Errorf("field number %d out of range: %w", num, ErrMalformed)
	}
	return num, wt, n, nil
}

func consumeVarint(b []byte) (uint64, int, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, fmt.Errorf("bad varint: %v: %w", protowire.ParseError(n), ErrMalformed)
	}
	return v, n, nil
}

// consumeBytes returns a length-delimited value as a sub-slice of b whose
// capacity ends with it, so appending to it cannot clobber what follows.
func consumeBytes(b []byte) ([]byte, int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, fmt.Errorf("bad length-delimited field: %v: %w", protowire.ParseError(n), ErrMalformed)
	}
	return v[:len(v):len(v)], n, nil
}

// skipField returns the length of the value of a field whose tag was already
// consumed.
func skipField(num protowire.Number, wt protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, wt, b)
	if n < 0 {
		return 0, fmt.Errorf("bad field value: %v: %w", protowire.ParseError(n), ErrMalformed)
	}
	return n, nil
}
