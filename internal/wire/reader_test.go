package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// testStream returns n frames alternating simple commands and SENDs with
// payloads of growing size, plus the frames' commands and hps.
func testStream(t testing.TB, n int) ([]byte, []*pb.BaseCommand, [][]byte) {
	var (
		stream []byte
		cmds   []*pb.BaseCommand
		hps    [][]byte
	)
	samples := sampleCommands()
	for i := range n {
		if i%2 == 0 {
			cmd := samples[i/2%len(samples)]
			stream = wire.AppendCommand(stream, cmd)
			cmds, hps = append(cmds, cmd), append(hps, nil)
			continue
		}
		meta := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(uint64(i)), PublishTime: proto.Uint64(1)}
		hp := wire.BuildPayload(meta, bytes.Repeat([]byte{byte(i)}, i*97))
		cmd := sendCommand(&pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(uint64(i))})
		stream = wire.AppendPayloadCommand(stream, cmd, hp)
		cmds, hps = append(cmds, cmd), append(hps, hp)
	}
	return stream, cmds, hps
}

func readAll(t *testing.T, r io.Reader, cmds []*pb.BaseCommand, hps [][]byte) {
	t.Helper()
	rd := wire.NewReader(r, 1<<20)
	for i := range cmds {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		cmd, err := f.Command()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !proto.Equal(cmd, cmds[i]) || f.Type != cmds[i].GetType() || !bytes.Equal(f.HeadersAndPayload, hps[i]) {
			t.Fatalf("frame %d: got %v, want %v", i, cmd, cmds[i])
		}
		if hps[i] != nil {
			if err := wire.VerifyChecksum(f.HeadersAndPayload); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
	}
	if _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestReadFrameStream(t *testing.T) {
	stream, cmds, hps := testStream(t, 500)
	readAll(t, bytes.NewReader(stream), cmds, hps)
}

func TestReadFrameOneByteAtATime(t *testing.T) {
	stream, cmds, hps := testStream(t, 40)
	readAll(t, &oneByteReader{b: stream}, cmds, hps)
}

func TestReadFrameFramesAreIndependent(t *testing.T) {
	stream, _, _ := testStream(t, 4)
	rd := wire.NewReader(bytes.NewReader(stream), 1<<20)
	first, err := rd.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(first.Raw)
	for range 3 {
		if _, err := rd.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first.Raw, keep) {
		t.Fatal("a later ReadFrame overwrote an earlier frame")
	}
}

func TestReadFrameTruncated(t *testing.T) {
	stream, _, _ := testStream(t, 2)
	for _, cut := range []int{1, 3, 5, 9, len(stream) - 1} {
		rd := wire.NewReader(bytes.NewReader(stream[:cut]), 1<<20)
		var err error
		for err == nil {
			_, err = rd.ReadFrame()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: got %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

func TestReadFrameTooLarge(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, 0xffffffff)
	rd := wire.NewReader(bytes.NewReader(hdr), 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := rd.ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("allocated %d bytes rejecting an oversize frame", n)
	}

	// The limit is inclusive and can be changed between frames.
	frame := wire.AppendCommand(nil, &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})
	size := len(frame) - 4
	rd = wire.NewReader(bytes.NewReader(bytes.Repeat(frame, 2)), size)
	if _, err := rd.ReadFrame(); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	rd.SetMaxFrameSize(size - 1)
	if _, err := rd.ReadFrame(); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

func TestReadFrameMalformed(t *testing.T) {
	cases := map[string][]byte{
		"totalSize < 4":       {0, 0, 0, 2, 0, 0},
		"cmdSize > totalSize": {0, 0, 0, 6, 0, 0, 0, 9, 8, 18},
		"garbage command":     {0, 0, 0, 6, 0, 0, 0, 2, 0xff, 0xff},
	}
	for name, b := range cases {
		_, err := wire.NewReader(bytes.NewReader(b), 1<<20).ReadFrame()
		if !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadFrameTransportError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := wire.NewReader(errReader{boom}, 0).ReadFrame(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}
