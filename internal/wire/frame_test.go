package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func sampleCommands() []*pb.BaseCommand {
	return []*pb.BaseCommand{
		{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}},
		{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
			ClientVersion:   proto.String("Pulsar Go 0.19.0"),
			AuthMethodName:  proto.String("token"),
			AuthData:        []byte("jwt"),
			ProtocolVersion: proto.Int32(20),
			FeatureFlags:    &pb.FeatureFlags{SupportsAuthRefresh: proto.Bool(true), SupportsBrokerEntryMetadata: proto.Bool(true)},
		}},
		{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
			ServerVersion: proto.String("MessageBus"), ProtocolVersion: proto.Int32(20), MaxMessageSize: proto.Int32(5 << 20),
		}},
		{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
			Topic: proto.String("persistent://public/default/t"), Subscription: proto.String("s"),
			SubType: pb.CommandSubscribe_Key_Shared.Enum(), ConsumerId: proto.Uint64(1), RequestId: proto.Uint64(2),
			Durable: proto.Bool(false), StartMessageId: &pb.MessageIdData{LedgerId: proto.Uint64(3), EntryId: proto.Uint64(4)},
			KeySharedMeta: &pb.KeySharedMeta{KeySharedMode: pb.KeySharedMode_STICKY.Enum(),
				HashRanges: []*pb.IntRange{{Start: proto.Int32(0), End: proto.Int32(65535)}}},
		}},
		{Type: pb.BaseCommand_ACK.Enum(), Ack: &pb.CommandAck{
			ConsumerId: proto.Uint64(7), AckType: pb.CommandAck_Individual.Enum(),
			MessageId: []*pb.MessageIdData{{LedgerId: proto.Uint64(1), EntryId: proto.Uint64(2), AckSet: []int64{-1, 5}}},
			RequestId: proto.Uint64(9),
		}},
		{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
			RequestId: proto.Uint64(1), Error: pb.ServerError_TopicNotFound.Enum(), Message: proto.String("no such topic"),
		}},
		{Type: pb.BaseCommand_TOPIC_MIGRATED.Enum(), TopicMigrated: &pb.CommandTopicMigrated{
			ResourceId: proto.Uint64(1), ResourceType: pb.CommandTopicMigrated_Consumer.Enum(),
		}},
	}
}

func TestSimpleCommandRoundTrip(t *testing.T) {
	for _, cmd := range sampleCommands() {
		frame := wire.AppendCommand([]byte("prefix"), cmd)
		if !bytes.HasPrefix(frame, []byte("prefix")) {
			t.Fatal("AppendCommand clobbered dst")
		}
		frame = frame[len("prefix"):]
		if got := binary.BigEndian.Uint32(frame); int(got) != len(frame)-4 {
			t.Fatalf("%v: totalSize %d, frame has %d bytes after it", cmd.GetType(), got, len(frame)-4)
		}
		f, err := wire.DecodeFrame(frame[4:])
		if err != nil {
			t.Fatalf("%v: %v", cmd.GetType(), err)
		}
		if f.Type != cmd.GetType() || f.HeadersAndPayload != nil {
			t.Fatalf("%v: got type %v, hp %x", cmd.GetType(), f.Type, f.HeadersAndPayload)
		}
		if !bytes.Equal(f.Raw, mustMarshal(t, cmd)) {
			t.Fatalf("%v: Raw differs from proto.Marshal", cmd.GetType())
		}
		got, err := f.Command()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, cmd) {
			t.Fatalf("round trip: got %v, want %v", got, cmd)
		}
	}
}

func TestPayloadCommandRoundTrip(t *testing.T) {
	meta := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2)}
	hp := wire.BuildPayload(meta, []byte("hello"))
	cmd := sendCommand(&pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(1)})
	frame := wire.AppendPayloadCommand(nil, cmd, hp)
	if got := binary.BigEndian.Uint32(frame); int(got) != len(frame)-4 {
		t.Fatalf("totalSize %d, frame has %d bytes after it", got, len(frame)-4)
	}
	f, err := wire.DecodeFrame(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != pb.BaseCommand_SEND || !bytes.Equal(f.HeadersAndPayload, hp) {
		t.Fatalf("got type %v hp %x", f.Type, f.HeadersAndPayload)
	}
	// Raw must not be able to grow into hp.
	if cap(f.Raw) != len(f.Raw) {
		t.Fatalf("Raw has spare capacity %d", cap(f.Raw)-len(f.Raw))
	}
	if err := wire.VerifyChecksum(f.HeadersAndPayload); err != nil {
		t.Fatal(err)
	}
	md, payload, err := wire.SplitPayload(f.HeadersAndPayload)
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != "hello" || !bytes.Equal(md, mustMarshal(t, meta)) {
		t.Fatalf("SplitPayload: metadata %x payload %q", md, payload)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	ping := mustMarshal(t, &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum()})
	body := func(cmdSize uint32, rest []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, cmdSize), rest...)
	}
	noType := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 5)
	cases := map[string][]byte{
		"empty":                 nil,
		"short size":            {0, 0, 1},
		"cmdSize > totalSize":   body(uint32(len(ping)+1), ping),
		"cmdSize huge":          body(0xffffffff, ping),
		"empty command":         body(0, nil),
		"command without type":  body(uint32(len(noType)), noType),
		"truncated varint":      body(2, []byte{0x08, 0x80}),
		"garbage":               body(4, []byte{0xff, 0xff, 0xff, 0xff}),
		"field number zero":     body(2, []byte{0x00, 0x01}),
		"stray end group":       body(1, []byte{0x0c}),
		"bytes field overflows": body(2, []byte{0x12, 0x05}),
	}
	for name, b := range cases {
		if _, err := wire.DecodeFrame(b); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestPeekType(t *testing.T) {
	// Last occurrence wins, wrong wire types are skipped, unknown values are
	// reported as they are.
	b := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(pb.BaseCommand_PING))
	b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), []byte("x"))
	b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), uint64(pb.BaseCommand_PONG))
	if typ, err := wire.PeekType(b); err != nil || typ != pb.BaseCommand_PONG {
		t.Fatalf("got %v, %v; want PONG", typ, err)
	}
	var cmd pb.BaseCommand
	if err := proto.Unmarshal(b, &cmd); err != nil || cmd.GetType() != pb.BaseCommand_PONG {
		t.Fatalf("proto disagrees: %v %v", cmd.GetType(), err)
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 999)
	if typ, err := wire.PeekType(unknown); err != nil || typ != 999 {
		t.Fatalf("got %v, %v; want 999", typ, err)
	}
	// protobuf-go keeps unknown values of proto2 enums, so Command agrees.
	if cmd, err := (&wire.Frame{Type: 999, Raw: unknown}).Command(); err != nil || cmd.GetType() != 999 {
		t.Fatalf("Command of unknown type: got %v, %v", cmd, err)
	}
}

func TestCommandMissingRequiredField(t *testing.T) {
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_FLOW.Enum(), Flow: &pb.CommandFlow{ConsumerId: proto.Uint64(1)}}
	frame := wire.AppendCommand(nil, cmd) // AppendCommand does not check
	f, err := wire.DecodeFrame(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Command(); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}
