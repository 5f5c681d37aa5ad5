package wire

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestCompressRoundTrip(t *testing.T) {
	random := make([]byte, 3000)
	rand.Read(random)
	inputs := [][]byte{nil, []byte("a"), bytes.Repeat([]byte("key-value "), 500), random}
	for _, codec := range []pb.CompressionType{pb.CompressionType_NONE, pb.CompressionType_LZ4,
		pb.CompressionType_ZLIB, pb.CompressionType_ZSTD, pb.CompressionType_SNAPPY} {
		for _, in := range inputs {
			c, err := Compress(codec, in)
			if err != nil {
				t.Fatalf("%s: compress: %v", codec, err)
			}
			out, err := Decompress(codec, c, len(in))
			if err != nil {
				t.Fatalf("%s: decompress %d bytes: %v", codec, len(in), err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("%s: round trip of %d bytes gave %d bytes", codec, len(in), len(out))
			}
		}
	}
}

func TestDecompressRefusesOversized(t *testing.T) {
	if _, err := Decompress(pb.CompressionType_LZ4, []byte{0}, MaxUncompressedSize+1); err == nil {
		t.Fatal("an uncompressed size beyond the bound was accepted")
	}
}
