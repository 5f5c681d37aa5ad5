package wasm

import (
	"errors"
	"testing"

	"github.com/messagebus/messagebus/pkg/function/abi"
)

func batchOf(payloads ...string) []abi.Message {
	msgs := make([]abi.Message, len(payloads))
	for k, p := range payloads {
		msgs[k] = abi.Message{Topic: "persistent://public/default/in", Key: "k", Payload: []byte(p)}
	}
	return msgs
}

// A batch goes on past failures and panics, each message with its own
// result, outputs and ack decision.
func TestBatchResults(t *testing.T) {
	in, _ := newHostile(t, Config{})
	if !in.m.Batch() {
		t.Fatal("the SDK module does not export the batch entry")
	}
	res, err := in.CallBatch(batchOf("a", "fail", "panic", "fanout", "ack", "nack", "count", "count"), false)
	if err != nil || len(res) != 8 {
		t.Fatalf("batch: %d results, %v", len(res), err)
	}
	want := []struct {
		status int32
		outs   int
		ack    int32
	}{{0, 1, abi.AckNone}, {1, 0, abi.AckNone}, {1, 0, abi.AckNone}, {0, 3, abi.AckNone}, {0, 0, abi.AckDone}, {0, 0, abi.NackDone}, {0, 1, abi.AckNone}, {0, 1, abi.AckNone}}
	for k, w := range want {
		r := res[k]
		if r.Status != w.status || len(r.Outputs) != w.outs || r.Ack != w.ack {
			t.Errorf("message %d: %+v, want %+v", k, r, w)
		}
	}
	if string(res[0].Outputs[0].Payload) != "a" || res[1].Error != "bad input" || res[2].Error != "panic: boom" {
		t.Errorf("results: %+v", res[:3])
	}
	if res[6].Outputs[0].Payload[0] != 1 || res[7].Outputs[0].Payload[0] != 2 {
		t.Errorf("counter: %v %v", res[6].Outputs, res[7].Outputs)
	}
	mustEcho(t, in)
}

// stopOnFail ends the batch at the first failure (EFFECTIVELY_ONCE must
// not run later messages before the failed one is retried).
func TestBatchStopOnFail(t *testing.T) {
	in, _ := newHostile(t, Config{})
	res, err := in.CallBatch(batchOf("a", "panic", "b"), true)
	if err != nil || len(res) != 2 || res[1].Status != abi.ResultFailed {
		t.Fatalf("batch: %+v, %v", res, err)
	}
}

// A crash in the middle keeps the results before it; the instance is
// restarted for the next call.
func TestBatchCrashKeepsThePrefix(t *testing.T) {
	in, _ := newHostile(t, Config{})
	res, err := in.CallBatch(batchOf("a", "b", "badptr", "c"), false)
	if !errors.Is(err, ErrCrashed) || len(res) != 2 || string(res[1].Outputs[0].Payload) != "b" {
		t.Fatalf("batch: %+v, %v", res, err)
	}
	res, err = in.CallBatch(batchOf("c"), false)
	if err != nil || len(res) != 1 || string(res[0].Outputs[0].Payload) != "c" {
		t.Fatalf("after the crash: %+v, %v", res, err)
	}
}

// A version-1 module (no batch export) is called once per message.
func TestBatchOnVersion1Module(t *testing.T) {
	in := newInstance(t, "testdata/minimal")
	res, err := in.CallBatch([]abi.Message{{Topic: "e", Payload: make([]byte, 128)}, {Topic: "e", Payload: make([]byte, 128)}}, false)
	if err != nil || len(res) != 2 || len(res[1].Outputs) != 1 || len(res[1].Outputs[0].Payload) != 128 {
		t.Fatalf("batch: %+v, %v", res, err)
	}
}
