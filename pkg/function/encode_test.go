package function

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"github.com/messagebus/messagebus/pkg/function/abi"
)

// The inline encoding must be abi's: the host decodes it with package abi.
func TestResultEncodingMatchesABI(t *testing.T) {
	msgs := []struct {
		topic string
		m     Message
	}{
		{"", Message{Payload: []byte("payload")}},
		{"persistent://public/default/out", Message{Key: "k", EventTime: time.UnixMilli(1_700_000_000_123), Payload: make([]byte, 128)}},
		{"other", Message{Key: "k2", Properties: map[string]string{"a": "1", "b": "2"}, Payload: []byte("x")}},
		{"", Message{}},
	}
	for _, ack := range []int32{ackNone, ackDone, nackDone} {
		b := make([]byte, resultHeadSize)
		var want []byte
		var outs []abi.Output
		for _, c := range msgs {
			b = appendOutputEntry(b, c.topic, &c.m)
			o := abi.Output{Topic: c.topic, Key: c.m.Key, Properties: c.m.Properties, Payload: c.m.Payload}
			if !c.m.EventTime.IsZero() {
				o.EventTime = c.m.EventTime.UnixMilli()
			}
			rec := abi.AppendOutput(nil, &o)
			want = binary.LittleEndian.AppendUint32(want, uint32(len(rec)))
			want = append(want, rec...)
			outs = append(outs, o)
		}
		putResultHead(b, ack, len(msgs))
		want = append(abi.AppendResultHead(nil, abi.ResultOK, ack, "", len(msgs)), want...)
		// Byte for byte, or (both encoders walk the properties map, in
		// either order) decoding to the same result.
		if !bytes.Equal(b, want) {
			var got, exp abi.Result
			if len(b) != len(want) || abi.DecodeResult(b, &got, abi.MaxOutputs) != nil ||
				abi.DecodeResult(want, &exp, abi.MaxOutputs) != nil || !reflect.DeepEqual(got, exp) {
				t.Fatalf("ack %d: encoded\n%x\nwant (abi)\n%x", ack, b, want)
			}
		}
		var r abi.Result
		if err := abi.DecodeResult(b, &r, abi.MaxOutputs); err != nil {
			t.Fatal(err)
		}
		if r.Status != abi.ResultOK || r.Ack != ack || len(r.Outputs) != len(outs) {
			t.Fatalf("decoded %+v", r)
		}
		for k := range outs {
			got, w := r.Outputs[k], outs[k]
			if got.Topic != w.Topic || got.Key != w.Key || got.EventTime != w.EventTime || !bytes.Equal(got.Payload, w.Payload) ||
				(len(w.Properties) > 0 && !reflect.DeepEqual(got.Properties, w.Properties)) {
				t.Errorf("output %d decoded as %+v, want %+v", k, got, w)
			}
		}
	}
}
