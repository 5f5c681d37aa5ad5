package wasm

import (
	"context"
	"log/slog"
	"testing"

	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

func benchInstance(b *testing.B, dir string) *Instance {
	code := wasmbuild.Build(b, dir)
	ctx := context.Background()
	r, err := NewRuntime(ctx, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(ctx) })
	m, err := r.Compile(ctx, code)
	if err != nil {
		b.Fatal(err)
	}
	in := m.NewInstance(Env{State: &mapState{m: map[string][]byte{}}, Log: slog.New(slog.DiscardHandler)})
	b.Cleanup(in.Close)
	return in
}

func benchCalls(b *testing.B, in *Instance, msg *abi.Message) {
	if _, err := in.Call(msg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := in.Call(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallIdentity is the per-message cost of the WASM call for the
// identity example written with the SDK: encoding the 128-byte input,
// entering the module, the SDK's decoding, the handler, the emitted
// output's decoding on the host.
func BenchmarkCallIdentity(b *testing.B) {
	in := benchInstance(b, "../../../examples/functions/identity")
	benchCalls(b, in, &abi.Message{Topic: "persistent://public/default/in", Key: "key-1", PublishTime: 1, Payload: make([]byte, 128)})
}

// BenchmarkCallMinimal is the floor: a module without the SDK that reads
// the input and emits its payload.
func BenchmarkCallMinimal(b *testing.B) {
	in := benchInstance(b, "testdata/minimal")
	benchCalls(b, in, &abi.Message{Topic: "e", Payload: make([]byte, 128)})
}

// BenchmarkCallCounter is a stateful call: one Incr on an in-memory state.
func BenchmarkCallCounter(b *testing.B) {
	in := benchInstance(b, "../../../examples/functions/wordcount")
	benchCalls(b, in, &abi.Message{Topic: "t", Payload: []byte("hello")})
}
