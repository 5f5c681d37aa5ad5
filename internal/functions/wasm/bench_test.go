package wasm

import (
	"context"
	"log/slog"
	"syscall"
	"testing"

	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

func benchInstance(b *testing.B, dir string) *Instance { return newInstance(b, dir) }

func newInstance(b testing.TB, dir string) *Instance {
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
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := in.Call(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
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

// benchBatches calls the module with batches of size messages and reports
// the cost per message (ns/msg), the figure the 2 µs target is
// about.
func benchBatches(b *testing.B, in *Instance, msg *abi.Message, size int) {
	msgs := make([]abi.Message, size)
	for k := range msgs {
		msgs[k] = *msg
	}
	if res, err := in.CallBatch(msgs, false); err != nil || len(res) != size {
		b.Fatal(len(res), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := in.CallBatch(msgs, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*size), "cpu-ns/msg")
}

// BenchmarkCallBatchIdentity is BenchmarkCallIdentity with batch calls of
// 100 messages (the worker's default batch size).
func BenchmarkCallBatchIdentity(b *testing.B) {
	in := benchInstance(b, "../../../examples/functions/identity")
	benchBatches(b, in, &abi.Message{Topic: "persistent://public/default/in", Key: "key-1", PublishTime: 1, Payload: make([]byte, 128)}, 100)
}

// BenchmarkCallBatchCounter is BenchmarkCallCounter with batch calls of 100.
func BenchmarkCallBatchCounter(b *testing.B) {
	in := benchInstance(b, "../../../examples/functions/wordcount")
	benchBatches(b, in, &abi.Message{Topic: "t", Payload: []byte("hello")}, 100)
}

// cpuTime is the process's CPU time (user and system) in nanoseconds: on a
// loaded machine wall-clock ns/op measures the load, CPU time per message
// measures the call.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCallBatchMinimal is the floor of batch calls: a module without
// the SDK that reports each input's payload as its output.
func BenchmarkCallBatchMinimal(b *testing.B) {
	in := benchInstance(b, "testdata/batchminimal")
	benchBatches(b, in, &abi.Message{Topic: "e", Payload: make([]byte, 128)}, 100)
}
