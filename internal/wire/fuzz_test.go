package wire_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// seedFrames returns frame bodies (everything after totalSize) of valid
// frames of several kinds.
func seedFrames(t testing.TB) [][]byte {
	var frames [][]byte
	for _, cmd := range sampleCommands() {
		frames = append(frames, wire.AppendCommand(nil, cmd))
	}
	r := rand.New(rand.NewPCG(11, 12))
	meta := randMetadata(r)
	hp := wire.BuildPayload(meta, []byte("payload"))
	frames = append(frames,
		wire.AppendPayloadCommand(nil, sendCommand(randSend(r)), hp),
		wire.AppendMessage(nil, 1, 2, 3, 4, []int64{-1, 7}, append(brokerEntryBlock(t), hp...)),
		wire.AppendMessage(nil, 1, 2, 3, 0, nil, hp[6:]),
		wire.AppendSendReceipt(nil, 1, 2, 3, 4, 5),
	)
	var bodies [][]byte
	for _, f := range frames {
		bodies = append(bodies, f[4:])
	}
	return bodies
}

func FuzzDecodeFrame(f *testing.F) {
	for _, b := range seedFrames(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The stream reader must agree with DecodeFrame.
		stream := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		fromReader, readErr := wire.NewReader(bytes.NewReader(append(stream, body...)), 1<<20).ReadFrame()

		fr, err := wire.DecodeFrame(body)
		if (err == nil) != (readErr == nil) {
			t.Fatalf("DecodeFrame error %v, ReadFrame error %v", err, readErr)
		}
		if err != nil {
			return
		}
		if fromReader.Type != fr.Type || !bytes.Equal(fromReader.Raw, fr.Raw) || !bytes.Equal(fromReader.HeadersAndPayload, fr.HeadersAndPayload) {
			t.Fatal("ReadFrame and DecodeFrame disagree")
		}
		if hp := fr.HeadersAndPayload; hp != nil {
			_ = wire.VerifyChecksum(hp)
			if meta, payload, err := wire.SplitPayload(hp); err == nil {
				var info wire.MetadataInfo
				if wire.ParseMetadata(meta, &info) == nil && info.HasNumMessagesInBatch {
					_ = wire.ForEachBatchMessage(payload, int(info.NumMessagesInBatch), func(int, []byte, []byte) error { return nil })
				}
			}
		}

		cmd, err := fr.Command()
		if err != nil {
			return
		}
		if cmd.GetType() != fr.Type {
			t.Fatalf("PeekType %v, proto %v", fr.Type, cmd.GetType())
		}
		var sf wire.SendFields
		switch err := wire.ParseSend(fr.Raw, &sf); {
		case cmd.Send == nil && err == nil:
			t.Fatal("ParseSend accepted a command without send")
		case cmd.Send != nil && err != nil:
			t.Fatalf("ParseSend failed on a command proto accepts: %v", err)
		case cmd.Send != nil:
			checkSend(t, &sf, cmd.GetSend())
		}

		var again []byte
		if fr.HeadersAndPayload == nil {
			again = wire.AppendCommand(nil, cmd)
		} else {
			again = wire.AppendPayloadCommand(nil, cmd, fr.HeadersAndPayload)
		}
		if int(binary.BigEndian.Uint32(again)) != len(again)-4 {
			t.Fatal("re-encoded totalSize is wrong")
		}
		fr2, err := wire.DecodeFrame(again[4:])
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		cmd2, err := fr2.Command()
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if fr2.Type != fr.Type || !proto.Equal(cmd, cmd2) || !bytes.Equal(fr2.HeadersAndPayload, fr.HeadersAndPayload) {
			t.Fatalf("round trip changed the frame:\n%v\n%v", cmd, cmd2)
		}
	})
}

func FuzzParseMetadata(f *testing.F) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 8 {
		f.Add(mustMarshal(f, randMetadata(r)))
	}
	f.Add(mustMarshal(f, testMeta()))
	f.Fuzz(func(t *testing.T, meta []byte) {
		var info wire.MetadataInfo
		parseErr := wire.ParseMetadata(meta, &info)

		var m pb.MessageMetadata
		if err := proto.Unmarshal(meta, &m); err == nil && parseErr != nil {
			t.Fatalf("proto accepts what ParseMetadata rejects: %v", parseErr)
		}
		// ParseMetadata skips the fields it does not read, so it may accept
		// what proto rejects; whatever both read must agree.
		m.Reset()
		if parseErr == nil && (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(meta, &m) == nil {
			checkMetadata(t, &info, &m)
		}
	})
}

func FuzzParseSingleMetadata(f *testing.F) {
	for _, m := range []*pb.SingleMessageMetadata{
		{PayloadSize: proto.Int32(3), PartitionKey: proto.String("k")},
		{PayloadSize: proto.Int32(0), CompactedOut: proto.Bool(true)},
		{PayloadSize: proto.Int32(0), PartitionKey: proto.String(""), NullValue: proto.Bool(true),
			Properties: []*pb.KeyValue{{Key: proto.String("a"), Value: proto.String("b")}}, SequenceId: proto.Uint64(7)},
	} {
		f.Add(mustMarshal(f, m))
	}
	f.Fuzz(func(t *testing.T, smm []byte) {
		var info wire.SingleInfo
		parseErr := wire.ParseSingleMetadata(smm, &info)

		var m pb.SingleMessageMetadata
		if err := proto.Unmarshal(smm, &m); err == nil && parseErr != nil {
			t.Fatalf("proto accepts what ParseSingleMetadata rejects: %v", parseErr)
		}
		// It skips the fields it does not read, so it may accept what proto
		// rejects; whatever both read must agree.
		m.Reset()
		if parseErr != nil || (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(smm, &m) != nil {
			return
		}
		if m.PayloadSize == nil || info.PayloadSize != m.GetPayloadSize() || info.CompactedOut != m.GetCompactedOut() ||
			info.NullValue != m.GetNullValue() || (info.PartitionKey != nil) != (m.PartitionKey != nil) ||
			string(info.PartitionKey) != m.GetPartitionKey() {
			t.Fatalf("ParseSingleMetadata %+v, proto %v", info, &m)
		}
	})
}
