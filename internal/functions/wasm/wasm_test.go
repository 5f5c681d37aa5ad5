package wasm

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

// mapState is an in-memory State.
type mapState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapState) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *mapState) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *mapState) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *mapState) Incr(_ context.Context, k string, d int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if v, ok := s.m[k]; ok {
		var err error
		if n, err = DecodeCounter(v); err != nil {
			return 0, err
		}
	}
	n += d
	s.m[k] = EncodeCounter(n)
	return n, nil
}

func newHostile(t testing.TB, cfg Config) (*Instance, *mapState) {
	t.Helper()
	code := wasmbuild.Build(t, "testdata/hostile")
	ctx := context.Background()
	r, err := NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	m, err := r.Compile(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	st := &mapState{m: map[string][]byte{}}
	in := m.NewInstance(Env{State: st, UserConfig: []byte(`{"greeting":"hi"}`), Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	return in, st
}

func call(t *testing.T, in *Instance, payload string) ([]abi.Output, error) {
	t.Helper()
	return in.Call(&abi.Message{Topic: "persistent://public/default/in", Key: "k", Payload: []byte(payload),
		Properties: map[string]string{"p": "v"}})
}

// mustEcho proves the instance still works.
func mustEcho(t *testing.T, in *Instance) {
	t.Helper()
	out, err := call(t, in, "hello")
	if err != nil || len(out) != 1 || string(out[0].Payload) != "hello" || out[0].Key != "k" || out[0].Properties["p"] != "v" {
		t.Fatalf("echo: %+v, %v", out, err)
	}
}

func TestEchoAndFanout(t *testing.T) {
	in, _ := newHostile(t, Config{})
	mustEcho(t, in)
	out, err := call(t, in, "fanout")
	if err != nil || len(out) != 3 || out[2].Topic != "t2" {
		t.Fatalf("fanout: %+v, %v", out, err)
	}
	out, err = call(t, in, "config")
	if err != nil || len(out) != 1 || string(out[0].Payload) != "hi" {
		t.Fatalf("config: %+v, %v", out, err)
	}
}

func TestUserErrorsKeepTheInstance(t *testing.T) {
	in, _ := newHostile(t, Config{})
	for _, p := range []string{"fail", "panic"} {
		_, err := call(t, in, p)
		var ue *UserError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: %v, want a UserError", p, err)
		}
		if p == "panic" && !strings.Contains(ue.Msg, "boom") {
			t.Fatalf("panic message %q", ue.Msg)
		}
	}
	mustEcho(t, in)
	if n := in.Restarts.Load(); n != 0 {
		t.Fatalf("restarts = %d", n)
	}
}

// The call timeout also bounds instantiating the module again after the
// restart, which takes well over 300 ms on a loaded 2-core machine.
func TestEndlessLoopIsInterrupted(t *testing.T) {
	in, _ := newHostile(t, Config{CallTimeout: 2 * time.Second})
	mustEcho(t, in)
	start := time.Now()
	_, err := call(t, in, "loop")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("loop: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("interrupted after %v", d)
	}
	mustEcho(t, in)
	if n := in.Restarts.Load(); n != 1 {
		t.Fatalf("restarts = %d", n)
	}
}

func TestUnboundedAllocationHitsTheCap(t *testing.T) {
	in, _ := newHostile(t, Config{MaxMemory: 32 << 20, CallTimeout: time.Minute})
	_, err := call(t, in, "alloc")
	if !errors.Is(err, ErrCrashed) {
		t.Fatalf("alloc: %v, want ErrCrashed", err)
	}
	mustEcho(t, in)
}

func TestExitAndBadPointers(t *testing.T) {
	in, _ := newHostile(t, Config{})
	for _, p := range []string{"exit", "badptr", "badincr", "hugelen"} {
		_, err := call(t, in, p)
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("%s: %v, want ErrCrashed", p, err)
		}
		mustEcho(t, in)
	}
}

// trapModule is a hand-assembled module whose mb_handle executes unreachable.
var trapModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type (i32) -> i32
	0x03, 0x02, 0x01, 0x00, // one function of type 0
	0x07, 0x0d, 0x01, 0x09, 'm', 'b', '_', 'h', 'a', 'n', 'd', 'l', 'e', 0x00, 0x00,
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable, end
}

func TestTrap(t *testing.T) {
	ctx := context.Background()
	r, err := NewRuntime(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m, err := r.Compile(ctx, trapModule)
	if err != nil {
		t.Fatal(err)
	}
	in := m.NewInstance(Env{})
	defer in.Close()
	for range 2 {
		if _, err := in.Call(&abi.Message{}); !errors.Is(err, ErrCrashed) {
			t.Fatalf("trap: %v, want ErrCrashed", err)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	ctx := context.Background()
	r, err := NewRuntime(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	noHandle := append([]byte(nil), trapModule...)
	copy(noHandle[24:33], "mb_hundle")
	for name, code := range map[string][]byte{"garbage": []byte("not wasm"), "no handler": noHandle} {
		if _, err := r.Compile(ctx, code); !errors.Is(err, ErrBadModule) {
			t.Errorf("%s: %v, want ErrBadModule", name, err)
		}
	}
}

func TestState(t *testing.T) {
	in, st := newHostile(t, Config{})
	for i := 1; i <= 3; i++ {
		out, err := call(t, in, "count")
		if err != nil || len(out) != 1 || out[0].Payload[0] != byte(i) {
			t.Fatalf("count %d: %+v, %v", i, out, err)
		}
	}
	st.m["count"] = []byte("x")
	if _, err := call(t, in, "count"); err == nil || !strings.Contains(err.Error(), "not a counter") {
		t.Fatalf("incr of a non-counter: %v", err)
	}
}
