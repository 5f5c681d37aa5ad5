package wire_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// appendNoise appends an unknown field with a random wire type.
func appendNoise(r *rand.Rand, b []byte) []byte {
	num := protowire.Number(100 + r.IntN(1000))
	switch r.IntN(4) {
	case 0:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), randU64(r))
	case 1:
		return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), r.Uint32())
	case 2:
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), r.Uint64())
	default:
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), randBytes(r, 10))
	}
}

func TestParseSendMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		raw := mustMarshal(t, sendCommand(randSend(r)))
		if maybe(r) {
			raw = appendNoise(r, raw)
		}
		if r.IntN(4) == 0 { // a second occurrence merges into the first
			raw = append(raw, mustMarshal(t, sendCommand(randSend(r)))...)
		}
		var cmd pb.BaseCommand
		if err := proto.Unmarshal(raw, &cmd); err != nil {
			t.Fatal(err)
		}
		var f wire.SendFields
		if err := wire.ParseSend(raw, &f); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkSend(t, &f, cmd.GetSend())
	}
}

func TestParseSendErrors(t *testing.T) {
	noSeq := mustMarshal(t, sendCommand(&pb.CommandSend{ProducerId: proto.Uint64(1)}))
	for name, raw := range map[string][]byte{
		"no send":        mustMarshal(t, &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}),
		"no sequence_id": noSeq,
		"truncated":      noSeq[:len(noSeq)-1],
		"garbage":        {0xff, 0xff},
	} {
		var f wire.SendFields
		if err := wire.ParseSend(raw, &f); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseMetadataMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 3000 {
		raw := mustMarshal(t, randMetadata(r))
		if maybe(r) {
			raw = appendNoise(r, raw)
		}
		if r.IntN(4) == 0 {
			raw = append(raw, mustMarshal(t, randMetadata(r))...)
		}
		var m pb.MessageMetadata
		if err := proto.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var info wire.MetadataInfo
		if err := wire.ParseMetadata(raw, &info); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkMetadata(t, &info, &m)
	}
}

func TestParseMetadataResetsInfo(t *testing.T) {
	full := mustMarshal(t, &pb.MessageMetadata{
		ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(1),
		PartitionKey: proto.String("k"), NumMessagesInBatch: proto.Int32(10), DeliverAtTime: proto.Int64(5),
	})
	bare := mustMarshal(t, testMeta())
	var info wire.MetadataInfo
	if err := wire.ParseMetadata(full, &info); err != nil {
		t.Fatal(err)
	}
	if err := wire.ParseMetadata(bare, &info); err != nil {
		t.Fatal(err)
	}
	checkMetadata(t, &info, testMeta())
}

func TestParseMetadataErrors(t *testing.T) {
	noTime := mustMarshal(t, &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1)})
	for name, raw := range map[string][]byte{
		"empty":           nil,
		"no publish_time": noTime,
		"truncated":       noTime[:len(noTime)-1],
		"bad tag":         {0x80},
	} {
		var info wire.MetadataInfo
		if err := wire.ParseMetadata(raw, &info); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	raw := mustMarshal(t, sendCommand(randSend(r)))
	meta := mustMarshal(t, randMetadata(r))
	var f wire.SendFields
	var info wire.MetadataInfo
	if n := testing.AllocsPerRun(100, func() { _ = wire.ParseSend(raw, &f) }); n != 0 {
		t.Errorf("ParseSend: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = wire.ParseMetadata(meta, &info) }); n != 0 {
		t.Errorf("ParseMetadata: %v allocs", n)
	}
}
