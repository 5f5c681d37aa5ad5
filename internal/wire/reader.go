package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// readBufferSize is the bufio buffer size: large enough that a burst of small
// commands costs one read syscall, small enough to keep per-connection memory
// low. Frames larger than it are read straight into their own buffer.
const readBufferSize = 32 * 1024

// Reader reads frames from a byte stream through a bufio.Reader. It is not
// safe for concurrent ReadFrame calls; SetMaxFrameSize may be called from any
// goroutine.
type Reader struct {
	br  *bufio.Reader
	max atomic.Int64
	hdr [4]byte
}

// NewReader returns a Reader over r that rejects frames whose totalSize
// exceeds maxFrameSize (typically max message size + FrameOverhead). A
// non-positive maxFrameSize selects 5 MiB + FrameOverhead.
func NewReader(r io.Reader, maxFrameSize int) *Reader {
	rd := &Reader{br: bufio.NewReaderSize(r, readBufferSize)}
	rd.SetMaxFrameSize(maxFrameSize)
	return rd
}

// SetMaxFrameSize changes the frame size limit for the frames read after it;
// non-positive n selects 5 MiB + FrameOverhead.
func (r *Reader) SetMaxFrameSize(n int) {
	if n <= 0 {
		n = defaultMaxFrameSize
	}
	r.max.Store(int64(n))
}

// ReadFrame reads and decodes the next frame. It returns io.EOF when the
// stream ends cleanly between frames, io.ErrUnexpectedEOF (wrapped) when it
// ends inside one, ErrFrameTooLarge before reading or allocating anything for
// an oversize frame, and ErrMalformed for bytes that are not a frame. After
// any error the stream position is undefined: close the connection.
func (r *Reader) ReadFrame() (*Frame, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame size: %w", err)
		}
		return nil, err // io.EOF or a transport error, as is
	}
	total := int64(binary.BigEndian.Uint32(r.hdr[:]))
	if limit := r.max.Load(); total > limit {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", total, limit, ErrFrameTooLarge)
	}
	if total < 4 {
		return nil, fmt.Errorf("frame of %d bytes cannot hold a command size: %w", total, ErrMalformed)
	}
	body := make([]byte, total)
	if _, err := io.ReadFull(r.br, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame of %d bytes: %w", total, err)
	}
	return DecodeFrame(body)
}
