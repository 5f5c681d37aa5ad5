package functions

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/messagebus/messagebus/pkg/function/abi"
	"github.com/prometheus/client_golang/prometheus"
)

// The worker's own per-message work around the WASM call, without the
// module and without the Pulsar client: fakes stand in for the consumer
// and the producer (the producer receipts at once).

type fakeMsg struct {
	pulsar.Message
	id      pulsar.MessageID
	payload []byte
}

func (m *fakeMsg) Topic() string                 { return "persistent://public/default/in" }
func (m *fakeMsg) Key() string                   { return "" }
func (m *fakeMsg) EventTime() time.Time          { return time.Time{} }
func (m *fakeMsg) PublishTime() time.Time        { return time.UnixMilli(1_700_000_000_000) }
func (m *fakeMsg) ID() pulsar.MessageID          { return m.id }
func (m *fakeMsg) Properties() map[string]string { return nil }
func (m *fakeMsg) Payload() []byte               { return m.payload }

type fakeConsumer struct {
	pulsar.Consumer
	acks, nacks int
}

func (c *fakeConsumer) Ack(pulsar.Message) error { c.acks++; return nil }
func (c *fakeConsumer) Nack(pulsar.Message)      { c.nacks++ }

type fakeProducer struct{ pulsar.Producer }

func (fakeProducer) SendAsync(_ context.Context, m *pulsar.ProducerMessage, cb func(pulsar.MessageID, *pulsar.ProducerMessage, error)) {
	cb(nil, m, nil)
}

// benchInstance is an ATLEAST_ONCE instance whose output producer is fake.
func benchInstance() *instance {
	const out = "persistent://public/default/out"
	m := &Manager{metrics: newMetrics(prometheus.NewRegistry())}
	cfg := Config{Tenant: "public", Namespace: "default", Name: "bench", Output: out, ProcessingGuarantees: AtLeastOnce}
	r := &runner{m: m, rec: Record{Config: cfg}, producers: map[string]pulsar.Producer{out: fakeProducer{}}}
	return &instance{Instance: &supervise.Instance{Ctx: context.Background()}, r: r, metrics: m.metrics.instance(&cfg, 0)}
}

// BenchmarkHostPerMessage is the worker's cost per message of a batch of
// 100 with one output each (an op is a batch): the input's ABI record (toABI), publishing
// the output and acknowledging the input on its receipt (finish).
func BenchmarkHostPerMessage(b *testing.B) {
	const size = 100
	i := benchInstance()
	c := &fakeConsumer{}
	payload := make([]byte, 128)
	msgs := make([]pulsar.Message, size)
	for k := range msgs {
		msgs[k] = &fakeMsg{id: pulsar.NewMessageID(12345, int64(1000+k/10), int32(k%10), -1), payload: payload}
	}
	var bt batchABI
	res := make([]abi.Result, size)
	for k := range res {
		res[k].Outputs = []abi.Output{{Payload: payload}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		ins := bt.fill(msgs)
		for k := range msgs {
			if err := i.finish(c, nil, msgs[k], &ins[k], &res[k]); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(b.N*size), "cpu-ns/msg")
	if c.acks != b.N*size {
		b.Fatalf("%d acks, want %d", c.acks, b.N*size)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
}

// cpuTime is the process's CPU time: under the machine's load it varies
// far less than the wall-clock time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func TestBatchABIMessageIDs(t *testing.T) {
	var bt batchABI
	for round, want := range [][]string{
		{"12345:7:0:-1", "12345:7:1:-1", "9:0:-1:3"},
		{"1:2:3:4"},
	} {
		var msgs []pulsar.Message
		for _, id := range want {
			var l, e int64
			var b, p int32
			if _, err := fmt.Sscanf(id, "%d:%d:%d:%d", &l, &e, &b, &p); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, &fakeMsg{id: pulsar.NewMessageID(l, e, b, p), payload: []byte(id)})
		}
		ins := bt.fill(msgs)
		if len(ins) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(ins), len(want))
		}
		for k := range ins {
			if ins[k].MessageID != want[k] || string(ins[k].Payload) != want[k] {
				t.Errorf("round %d: record %d has id %q payload %q, want %q", round, k, ins[k].MessageID, ins[k].Payload, want[k])
			}
		}
	}
}
