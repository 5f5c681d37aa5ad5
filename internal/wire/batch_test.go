package wire_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// appendBatchEntry appends [u32 size][SingleMessageMetadata][data].
func appendBatchEntry(t testing.TB, b []byte, smm *pb.SingleMessageMetadata, data []byte) []byte {
	md := mustMarshal(t, smm)
	b = binary.BigEndian.AppendUint32(b, uint32(len(md)))
	return append(append(b, md...), data...)
}

func testBatch(t testing.TB, n int) []byte {
	var b []byte
	for i := range n {
		data := []byte(fmt.Sprintf("message-%d", i))
		smm := &pb.SingleMessageMetadata{PayloadSize: proto.Int32(int32(len(data))), PartitionKey: proto.String(fmt.Sprint("k", i))}
		b = appendBatchEntry(t, b, smm, data)
	}
	return b
}

func TestForEachBatchMessage(t *testing.T) {
	batch := testBatch(t, 5)
	seen := 0
	err := wire.ForEachBatchMessage(batch, 5, func(i int, smm, data []byte) error {
		var m pb.SingleMessageMetadata
		if err := proto.Unmarshal(smm, &m); err != nil {
			return err
		}
		if i != seen || string(data) != fmt.Sprintf("message-%d", i) || m.GetPartitionKey() != fmt.Sprint("k", i) {
			return fmt.Errorf("message %d: key %q data %q", i, m.GetPartitionKey(), data)
		}
		if cap(data) != len(data) {
			return fmt.Errorf("message %d: data can grow into the next message", i)
		}
		seen++
		return nil
	})
	if err != nil || seen != 5 {
		t.Fatalf("seen %d: %v", seen, err)
	}

	empty := appendBatchEntry(t, nil, &pb.SingleMessageMetadata{PayloadSize: proto.Int32(0)}, nil)
	if err := wire.ForEachBatchMessage(empty, 1, func(_ int, _, data []byte) error {
		if len(data) != 0 {
			t.Errorf("empty message has %d bytes", len(data))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestForEachBatchMessageStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := wire.ForEachBatchMessage(testBatch(t, 5), 5, func(i int, _, _ []byte) error {
		calls++
		if i == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}

func TestForEachBatchMessageMalformed(t *testing.T) {
	batch := testBatch(t, 3)
	noSize := appendBatchEntry(t, nil, &pb.SingleMessageMetadata{PartitionKey: proto.String("k")}, nil)
	negative := appendBatchEntry(t, nil, &pb.SingleMessageMetadata{PayloadSize: proto.Int32(-1)}, nil)
	tooBig := appendBatchEntry(t, nil, &pb.SingleMessageMetadata{PayloadSize: proto.Int32(100)}, []byte("short"))
	hugeMeta := binary.BigEndian.AppendUint32(nil, 0xffffffff)
	cases := []struct {
		name  string
		batch []byte
		n     int
	}{
		{"more messages than bytes", batch, 4},
		{"fewer messages than bytes", batch, 2},
		{"negative count", batch, -1},
		{"huge count", batch, 1 << 30},
		{"truncated size", batch[:2], 1},
		{"metadata size overruns", hugeMeta, 1},
		{"truncated last message", batch[:len(batch)-1], 3},
		{"no payload_size", noSize, 1},
		{"negative payload_size", negative, 1},
		{"payload_size overruns", tooBig, 1},
		{"garbage metadata", []byte{0, 0, 0, 2, 0xff, 0xff}, 1},
	}
	for _, c := range cases {
		err := wire.ForEachBatchMessage(c.batch, c.n, func(int, []byte, []byte) error { return nil })
		if !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", c.name, err)
		}
	}
}
