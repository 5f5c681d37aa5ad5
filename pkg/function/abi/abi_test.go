package abi

import (
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	m := Message{Topic: "persistent://a/b/c", Key: "k", EventTime: 5, PublishTime: 7, MessageID: "1:2:-1:0",
		Properties: map[string]string{"x": "y", "": "z"}, Payload: []byte("hello")}
	got, err := DecodeMessage(AppendMessage(nil, &m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestOutputRoundTrip(t *testing.T) {
	o := Output{Topic: "t", Key: "k", EventTime: -1, Properties: map[string]string{"a": "b"}, Payload: []byte{0, 1}}
	got, err := DecodeOutput(AppendOutput(nil, &o))
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := DecodeOutput(AppendOutput(nil, &o)[:10]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func FuzzDecodeOutput(f *testing.F) {
	f.Add(AppendOutput(nil, &Output{Topic: "t", Properties: map[string]string{"a": "b"}, Payload: []byte("p")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOutput(b)
		if err != nil {
			return
		}
		o2, err := DecodeOutput(AppendOutput(nil, &o))
		if err != nil || !reflect.DeepEqual(o, o2) {
			t.Fatalf("re-encoding changed %+v to %+v (%v)", o, o2, err)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(AppendMessage(nil, &Message{Topic: "t", Payload: []byte("p")}))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = DecodeMessage(b) })
}
