package wire_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestAppendSendReceiptMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		pid, seq, high := randU64(r), randU64(r), randU64(r)
		ledger, entry := randI64(r), randI64(r)
		want := wire.AppendCommand([]byte{0xAA}, &pb.BaseCommand{
			Type: pb.BaseCommand_SEND_RECEIPT.Enum(),
			SendReceipt: &pb.CommandSendReceipt{
				ProducerId:        proto.Uint64(pid),
				SequenceId:        proto.Uint64(seq),
				MessageId:         &pb.MessageIdData{LedgerId: proto.Uint64(uint64(ledger)), EntryId: proto.Uint64(uint64(entry))},
				HighestSequenceId: proto.Uint64(high),
			},
		})
		got := wire.AppendSendReceipt([]byte{0xAA}, pid, seq, high, ledger, entry)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d %d %d %d %d):\n got %x\nwant %x", i, pid, seq, high, ledger, entry, got, want)
		}
	}
}

func TestAppendMessageMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		consumer, ledger, entry := randU64(r), randI64(r), randI64(r)
		var redelivery uint32
		if maybe(r) {
			redelivery = uint32(randU64(r))
		}
		var ackSet []int64
		for range r.IntN(4) {
			ackSet = append(ackSet, randI64(r))
		}
		hp := wire.BuildPayload(testMeta(), randBytes(r, 64))
		if i%10 == 0 {
			hp = nil
		}
		msg := &pb.CommandMessage{
			ConsumerId: proto.Uint64(consumer),
			MessageId:  &pb.MessageIdData{LedgerId: proto.Uint64(uint64(ledger)), EntryId: proto.Uint64(uint64(entry))},
			AckSet:     ackSet,
		}
		if redelivery != 0 {
			msg.RedeliveryCount = proto.Uint32(redelivery)
		}
		cmd := &pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: msg}
		want := wire.AppendPayloadCommand([]byte{0xBB}, cmd, hp)
		if hp == nil {
			want = wire.AppendCommand([]byte{0xBB}, cmd)
		}
		got := wire.AppendMessage([]byte{0xBB}, consumer, ledger, entry, redelivery, ackSet, hp)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %x\nwant %x", i, got, want)
		}
		f, err := wire.DecodeFrame(got[5:])
		if err != nil {
			t.Fatal(err)
		}
		back, err := f.Command()
		if err != nil || !proto.Equal(back, cmd) || !bytes.Equal(f.HeadersAndPayload, hp) {
			t.Fatalf("case %d: decoded %v, %v", i, back, err)
		}
		// Unset optionals stay unset on the client's side.
		if id := back.GetMessage().GetMessageId(); id.Partition != nil || id.BatchIndex != nil {
			t.Fatalf("case %d: partition/batch_index set: %v", i, id)
		}
	}
}

func TestAppendZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	hp := wire.BuildPayload(testMeta(), make([]byte, 1024))
	ackSet := []int64{-1, 3}
	if n := testing.AllocsPerRun(100, func() {
		_ = wire.AppendSendReceipt(buf, 1, 2, 2, 3, 4)
	}); n != 0 {
		t.Errorf("AppendSendReceipt: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = wire.AppendMessage(buf, 1, 2, 3, 4, ackSet, hp)
	}); n != 0 {
		t.Errorf("AppendMessage: %v allocs", n)
	}
}

func TestAppendCommandToNonEmptyDst(t *testing.T) {
	ping := &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}
	pong := &pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}}
	two := wire.AppendCommand(wire.AppendCommand(nil, ping), pong)
	want := append(wire.AppendCommand(nil, ping), wire.AppendCommand(nil, pong)...)
	if !bytes.Equal(two, want) {
		t.Fatalf("got %x want %x", two, want)
	}
}
