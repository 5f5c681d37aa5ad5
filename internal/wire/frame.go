package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

const (
	// MagicCrc32c starts the checksummed metadata+payload block of hp.
	MagicCrc32c uint16 = 0x0e01
	// MagicBrokerEntryMetadata starts the optional broker entry metadata
	// block that precedes the MagicCrc32c block.
	MagicBrokerEntryMetadata uint16 = 0x0e02
	// FrameOverhead is how many bytes a frame may exceed the negotiated
	// maximum message size by (command, metadata, headers), matching the
	// padding the client allows.
	FrameOverhead = 10 * 1024
)

// defaultMaxFrameSize applies when a Reader is given a non-positive limit:
// the protocol's default 5 MiB message size plus FrameOverhead.
const defaultMaxFrameSize = 5<<20 + FrameOverhead

var (
	// ErrFrameTooLarge reports a frame whose totalSize exceeds the limit.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed reports bytes that are not a valid frame, command or
	// metadata block; the wrapping error says what is wrong.
	ErrMalformed = errors.New("wire: malformed data")
	// ErrChecksum reports a crc32c mismatch over metadata and payload.
	ErrChecksum = errors.New("wire: checksum mismatch")
)

// Frame is one decoded frame. Its byte slices are owned by the caller (they
// are freshly allocated per frame, or sub-slices of one fresh allocation, or
// of the buffer given to DecodeFrame) and may be retained.
type Frame struct {
	// Type is BaseCommand.type, read without decoding the rest of Raw. It
	// may be a value this package has no name for.
	Type pb.BaseCommand_Type
	// Raw is the encoded BaseCommand.
	Raw []byte
	// HeadersAndPayload is everything after the command (hp), nil when the
	// frame ends with the command.
	HeadersAndPayload []byte
}

// Command fully decodes Raw. Missing required fields are an error wrapping
// ErrMalformed, so handlers may rely on them being set.
func (f *Frame) Command() (*pb.BaseCommand, error) {
	cmd := new(pb.BaseCommand)
	if err := proto.Unmarshal(f.Raw, cmd); err != nil {
		return nil, fmt.Errorf("decode %v command: %v: %w", f.Type, err, ErrMalformed)
	}
	return cmd, nil
}

// DecodeFrame decodes one frame given everything after the totalSize field.
// The Frame's slices alias body. Only BaseCommand.type is decoded; the rest of
// the command is checked for well-formed protobuf framing at the top level.
func DecodeFrame(body []byte) (*Frame, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("frame body of %d bytes has no command size: %w", len(body), ErrMalformed)
	}
	cmdSize := uint64(binary.BigEndian.Uint32(body))
	if cmdSize > uint64(len(body)-4) {
		return nil, fmt.Errorf("command size %d exceeds frame body of %d bytes: %w", cmdSize, len(body)-4, ErrMalformed)
	}
	end := 4 + int(cmdSize)
	raw := body[4:end:end]
	typ, err := PeekType(raw)
	if err != nil {
		return nil, err
	}
	f := &Frame{Type: typ, Raw: raw}
	if end < len(body) {
		f.HeadersAndPayload = body[end:len(body):len(body)]
	}
	return f, nil
}

// PeekType returns BaseCommand.type (field 1) from encoded command bytes
// without a full decode. Like proto.Unmarshal, it takes the last occurrence of
// the field and ignores one with the wrong wire type; it scans the whole
// message, so a nil error also means the top-level framing is sound.
func PeekType(cmd []byte) (pb.BaseCommand_Type, error) {
	var (
		typ   pb.BaseCommand_Type
		found bool
	)
	for b := cmd; len(b) > 0; {
		num, wt, n, err := consumeTag(b)
		if err != nil {
			return 0, fmt.Errorf("command: %w", err)
		}
		b = b[n:]
		if num == 1 && wt == wireVarint {
			v, n, err := consumeVarint(b)
			if err != nil {
				return 0, fmt.Errorf("command type: %w", err)
			}
			b = b[n:]
			typ, found = pb.BaseCommand_Type(int32(v)), true
			continue
		}
		n, err = skipField(num, wt, b)
		if err != nil {
			return 0, fmt.Errorf("command field %d: %w", num, err)
		}
		b = b[n:]
	}
	if !found {
		return 0, fmt.Errorf("command has no type: %w", ErrMalformed)
	}
	return typ, nil
}
