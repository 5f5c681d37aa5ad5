package wire

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// MaxUncompressedSize bounds what Decompress produces, whatever the
// metadata claims: a lying uncompressed_size must not cost the broker its
// memory.
const MaxUncompressedSize = 64 << 20

var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxUncompressedSize))
})

var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
})

// Decompress undoes a payload compression with the codecs and framing of
// Pulsar's clients (LZ4 block, zlib stream, zstd frame, snappy block).
// size is the metadata's uncompressed_size.
func Decompress(codec pb.CompressionType, payload []byte, size int) ([]byte, error) {
	return DecompressTo(nil, codec, payload, size)
}

// DecompressTo is Decompress into dst's storage when it is large enough
// (LZ4, zstd, snappy), so that a caller decompressing entry after entry
// (a compaction) reuses one buffer. The result may alias dst.
func DecompressTo(dst []byte, codec pb.CompressionType, payload []byte, size int) ([]byte, error) {
	if codec == pb.CompressionType_NONE {
		return payload, nil
	}
	if size > MaxUncompressedSize || size < 0 {
		return nil, fmt.Errorf("uncompressed size %d exceeds %d bytes", size, MaxUncompressedSize)
	}
	switch codec {
	case pb.CompressionType_LZ4:
		out := dst[:cap(dst)]
		if len(out) < size {
			out = make([]byte, size)
		}
		n, err := lz4.UncompressBlock(payload, out[:size])
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return out[:n], nil
	case pb.CompressionType_ZLIB:
		r, err := zlib.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(r, MaxUncompressedSize))
		if err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		return out, nil
	case pb.CompressionType_ZSTD:
		d, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if cap(dst) < size {
			dst = make([]byte, 0, size)
		}
		out, err := d.DecodeAll(payload, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	case pb.CompressionType_SNAPPY:
		if n, err := snappy.DecodedLen(payload); err != nil || n > MaxUncompressedSize {
			return nil, fmt.Errorf("snappy: bad or oversized block (%d bytes, %v)", n, err)
		}
		out, err := snappy.Decode(dst[:cap(dst)], payload)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression %d", codec)
}

// Compress compresses data as Pulsar's clients do, so that they can
// decompress it with the codec named in the metadata.
func Compress(codec pb.CompressionType, data []byte) ([]byte, error) {
	switch codec {
	case pb.CompressionType_NONE:
		return data, nil
	case pb.CompressionType_LZ4:
		out := make([]byte, lz4.CompressBlockBound(len(data)))
		var c lz4.Compressor
		n, err := c.CompressBlock(data, out)
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if n == 0 { // incompressible: one literal-only sequence
			return appendLZ4Literals(out[:0], data), nil
		}
		return out[:n], nil
	case pb.CompressionType_ZLIB:
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		if _, err := w.Write(data); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		return buf.Bytes(), nil
	case pb.CompressionType_ZSTD:
		e, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return e.EncodeAll(data, nil), nil
	case pb.CompressionType_SNAPPY:
		return snappy.Encode(nil, data), nil
	}
	return nil, fmt.Errorf("unknown compression %d", codec)
}

// appendLZ4Literals writes data as an LZ4 block of one sequence without a
// match: a token with the literal length, its extension bytes, the literals.
func appendLZ4Literals(dst, data []byte) []byte {
	n := len(data)
	if n < 15 {
		dst = append(dst, byte(n<<4))
	} else {
		dst = append(dst, 0xF0)
		for n -= 15; n >= 255; n -= 255 {
			dst = append(dst, 255)
		}
		dst = append(dst, byte(n))
	}
	return append(dst, data...)
}
