package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func testMeta() *pb.MessageMetadata {
	return &pb.MessageMetadata{ProducerName: proto.String("standalone-0-1"), SequenceId: proto.Uint64(42), PublishTime: proto.Uint64(1700000000000)}
}

// brokerEntryBlock returns [0x0e02][size][BrokerEntryMetadata].
func brokerEntryBlock(t testing.TB) []byte {
	bem := mustMarshal(t, &pb.BrokerEntryMetadata{BrokerTimestamp: proto.Uint64(1700000000001), Index: proto.Uint64(7)})
	b := binary.BigEndian.AppendUint16(nil, wire.MagicBrokerEntryMetadata)
	b = binary.BigEndian.AppendUint32(b, uint32(len(bem)))
	return append(b, bem...)
}

func TestBuildPayloadLayout(t *testing.T) {
	meta := testMeta()
	hp := wire.BuildPayload(meta, []byte("payload"))
	md := mustMarshal(t, meta)
	want := binary.BigEndian.AppendUint16(nil, 0x0e01)
	body := append(binary.BigEndian.AppendUint32(nil, uint32(len(md))), md...)
	body = append(body, "payload"...)
	want = binary.BigEndian.AppendUint32(want, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	want = append(want, body...)
	if !bytes.Equal(hp, want) {
		t.Fatalf("BuildPayload\n got %x\nwant %x", hp, want)
	}
}

func TestVerifyChecksum(t *testing.T) {
	hp := wire.BuildPayload(testMeta(), []byte("hello, world"))
	if err := wire.VerifyChecksum(hp); err != nil {
		t.Fatal(err)
	}
	withBEM := append(brokerEntryBlock(t), hp...)
	if err := wire.VerifyChecksum(withBEM); err != nil {
		t.Fatalf("with broker entry metadata: %v", err)
	}
	for i := 2; i < len(hp); i++ { // any flipped bit after the magic is caught
		bad := bytes.Clone(hp)
		bad[i] ^= 0x10
		if err := wire.VerifyChecksum(bad); !errors.Is(err, wire.ErrChecksum) {
			t.Fatalf("flipped byte %d: got %v, want ErrChecksum", i, err)
		}
	}
	bad := bytes.Clone(withBEM)
	bad[len(bad)-1]++
	if err := wire.VerifyChecksum(bad); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("with broker entry metadata: got %v, want ErrChecksum", err)
	}

	// Old clients send [metaSize][meta][payload] without magic: nothing to check.
	if err := wire.VerifyChecksum(hp[6:]); err != nil {
		t.Fatalf("no magic: %v", err)
	}
	if err := wire.VerifyChecksum(nil); err != nil {
		t.Fatalf("empty: %v", err)
	}
	for name, b := range map[string][]byte{
		"truncated checksum":            hp[:5],
		"truncated broker entry header": withBEM[:4],
		"broker entry overruns":         {0x0e, 0x02, 0, 0, 0, 9, 1, 2},
	} {
		if err := wire.VerifyChecksum(b); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestSplitPayload(t *testing.T) {
	meta := testMeta()
	md := mustMarshal(t, meta)
	hp := wire.BuildPayload(meta, []byte("data"))
	for name, b := range map[string][]byte{
		"checksummed":           hp,
		"broker entry metadata": append(brokerEntryBlock(t), hp...),
		"no magic":              hp[6:],
	} {
		gotMeta, payload, err := wire.SplitPayload(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(gotMeta, md) || string(payload) != "data" {
			t.Fatalf("%s: got %x %q", name, gotMeta, payload)
		}
		if cap(gotMeta) != len(gotMeta) {
			t.Fatalf("%s: metadata can grow into the payload", name)
		}
	}
	if _, payload, err := wire.SplitPayload(wire.BuildPayload(meta, nil)); err != nil || len(payload) != 0 {
		t.Fatalf("empty payload: %q %v", payload, err)
	}
	for name, b := range map[string][]byte{
		"empty":              nil,
		"magic only":         hp[:6],
		"short size":         hp[:8],
		"metadata overruns":  hp[:10+len(md)-1],
		"huge metadata size": {0x0e, 0x01, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1},
	} {
		if _, _, err := wire.SplitPayload(b); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}
