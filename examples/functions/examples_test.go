package functions_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

// The examples are built with the Go toolchain (GOOS=wasip1) and run in
// the broker's runtime; test/functions_test.go runs them through a broker.

type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memState) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memState) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memState) Incr(_ context.Context, k string, d int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if v, ok := s.m[k]; ok {
		n, _ = wasm.DecodeCounter(v)
	}
	n += d
	s.m[k] = wasm.EncodeCounter(n)
	return n, nil
}

func instance(t *testing.T, dir, userConfig string) (*wasm.Instance, *memState) {
	t.Helper()
	code := wasmbuild.Build(t, dir)
	ctx := context.Background()
	r, err := wasm.NewRuntime(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	m, err := r.Compile(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	st := &memState{m: map[string][]byte{}}
	in := m.NewInstance(wasm.Env{State: st, UserConfig: []byte(userConfig), Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	return in, st
}

func TestIdentity(t *testing.T) {
	in, _ := instance(t, "identity", "")
	out, err := in.Call(&abi.Message{Topic: "t", Key: "k", Payload: []byte("x"), Properties: map[string]string{"a": "b"}})
	if err != nil || len(out) != 1 || out[0].Topic != "" || string(out[0].Payload) != "x" || out[0].Properties["a"] != "b" {
		t.Fatalf("%+v, %v", out, err)
	}
}

func TestRoute(t *testing.T) {
	in, _ := instance(t, "route", `{"routes":{"eu":"persistent://public/default/orders-eu"},"source":"shop"}`)
	// A long payload: reading the user config must not overwrite the input.
	out, err := in.Call(&abi.Message{Topic: "t", Key: "eu:42", Payload: []byte("order with a payload longer than the config")})
	if err != nil || len(out) != 1 || out[0].Topic != "persistent://public/default/orders-eu" || out[0].Key != "eu:42" ||
		string(out[0].Payload) != "order with a payload longer than the config" ||
		out[0].Properties["region"] != "eu" || out[0].Properties["source"] != "shop" {
		t.Fatalf("eu: %+v, %v", out, err)
	}
	out, err = in.Call(&abi.Message{Topic: "t", Key: "us:1", Payload: []byte("order")})
	if err != nil || len(out) != 1 || out[0].Topic != "" || out[0].Properties["region"] != "us" {
		t.Fatalf("us: %+v, %v", out, err)
	}
}

func TestWordCount(t *testing.T) {
	in, st := instance(t, "wordcount", "")
	for range 2 {
		if _, err := in.Call(&abi.Message{Topic: "t", Payload: []byte("the cat, the hat")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := wasm.DecodeCounter(st.m["word/the"]); n != 4 {
		t.Fatalf("the = %d", n)
	}
	if n, _ := wasm.DecodeCounter(st.m["word/cat"]); n != 2 {
		t.Fatalf("cat = %d", n)
	}
}

func TestFilter(t *testing.T) {
	in, _ := instance(t, "filter", "")
	out, err := in.Call(&abi.Message{Topic: "persistent://public/default/in", Payload: []byte(`{"id":"1"}`)})
	if err != nil || len(out) != 1 || out[0].Topic != "" {
		t.Fatalf("valid: %+v, %v", out, err)
	}
	for _, bad := range []string{`not json`, `{"name":"x"}`} {
		out, err = in.Call(&abi.Message{Topic: "persistent://public/default/in", MessageID: "1:2:-1:-1", Payload: []byte(bad)})
		if err != nil || len(out) != 1 || out[0].Topic != "persistent://public/default/in-DLQ" || out[0].Properties["error"] == "" {
			t.Fatalf("%s: %+v, %v", bad, out, err)
		}
	}
}
