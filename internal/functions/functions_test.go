package functions

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/meta"
)

func TestConfigNormalize(t *testing.T) {
	c := Config{Tenant: "public", Namespace: "default", Name: "f", Inputs: []string{"in"}, Output: "out"}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Inputs[0] != "persistent://public/default/in" || c.Output != "persistent://public/default/out" ||
		c.ProcessingGuarantees != AtLeastOnce || c.SubscriptionType != SubShared || c.SubName != "public/default/f" ||
		c.Parallelism != 1 || c.SubscriptionPosition != "Latest" {
		t.Fatalf("defaults: %+v", c)
	}
	eo := Config{Tenant: "t", Namespace: "n", Name: "f", Inputs: []string{"in"}, ProcessingGuarantees: "effectively_once"}
	if err := eo.normalize(); err != nil || eo.SubscriptionType != SubFailover {
		t.Fatalf("EO: %+v, %v", eo, err)
	}
	for _, bad := range []Config{
		{Tenant: "t", Namespace: "n", Name: "f"},
		{Tenant: "t", Namespace: "n", Name: "f/x", Inputs: []string{"in"}},
		{Tenant: "t", Namespace: "n", Name: "f", Inputs: []string{"in"}, Parallelism: 1000},
		{Tenant: "t", Namespace: "n", Name: "f", Inputs: []string{"in"}, ProcessingGuarantees: "EFFECTIVELY_ONCE", SubscriptionType: "Shared"},
		{Tenant: "t", Namespace: "n", Name: "f", Inputs: []string{"in"}, Runtime: "JAVA"},
		{Tenant: "t", Namespace: "n", Name: "f", TopicsPattern: "in-("},
	} {
		if err := bad.normalize(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestConfigKeepsUnknownFields(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"tenant":"t","fqfn":"t/n/f","windowConfig":{"windowLengthCount":3},"inputs":["a"]}`), &c); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if !strings.Contains(string(b), `"windowConfig":{"windowLengthCount":3}`) || !strings.Contains(string(b), `"inputs":["a"]`) {
		t.Fatalf("re-encoded %s", b)
	}
}

type fakeID struct {
	pulsar.MessageID
	l, e int64
	b    int32
}

func (f fakeID) LedgerID() int64 { return f.l }
func (f fakeID) EntryID() int64  { return f.e }
func (f fakeID) BatchIdx() int32 { return f.b }

func TestSequenceIDsGrowWithPosition(t *testing.T) {
	positions := []fakeID{{l: 0, e: 0, b: -1}, {l: 0, e: 0, b: 3}, {l: 0, e: 1, b: -1}, {l: 1, e: 0, b: -1}, {l: 7, e: 1 << 20, b: 999}}
	var last int64 = -1
	for _, p := range positions {
		for k := range 3 {
			s, err := sequenceID(p, k)
			if err != nil || s <= last {
				t.Fatalf("%+v out %d: %d after %d (%v)", p, k, s, last, err)
			}
			last = s
		}
	}
	if _, err := sequenceID(fakeID{l: 1 << 20}, 0); err == nil {
		t.Fatal("ledger id past the range accepted")
	}
}

func TestStateIncrIsAtomic(t *testing.T) {
	store, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	st := newState(store, "t/n/f")
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := st.Incr(ctx, "a/b c", 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, err := st.Incr(ctx, "a/b c", 0)
	if err != nil || n != 100 {
		t.Fatalf("counter = %d, %v", n, err)
	}
	// Nothing is durable before flush.
	if _, _, err := st.getVersion(ctx, "a/b c"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("before flush: %v", err)
	}
	if err := st.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second node's state on the same store: its increments and this
	// node's, flushed after the other's, both count.
	other := newState(store, "t/n/f")
	if _, err := other.Incr(ctx, "a/b c", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Incr(ctx, "a/b c", 1); err != nil {
		t.Fatal(err)
	}
	if err := other.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _, err := newState(store, "t/n/f").getVersion(ctx, "a/b c"); err != nil || len(v) != 8 || v[0] != 106 {
		t.Fatalf("after two nodes' flushes: %v, %v", v, err)
	}
	if err := st.Put(ctx, "s", []byte("text")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Incr(ctx, "s", 1); err == nil {
		t.Fatal("incr of a non-counter succeeded")
	}
	if err := st.deleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Get(ctx, "s"); ok {
		t.Fatal("state survived deleteAll")
	}
}

func TestCodeChunksRoundTrip(t *testing.T) {
	m, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := store{meta: m}
	ctx := context.Background()
	code := make([]byte, 3*codeChunk+17)
	for i := range code {
		code[i] = byte(i * 7)
	}
	ref, err := s.putCode(ctx, "t/n/f", 5, code)
	if err != nil || ref.Chunks != 4 {
		t.Fatalf("%+v, %v", ref, err)
	}
	got, err := s.code(ctx, "t/n/f", ref)
	if err != nil || string(got) != string(code) {
		t.Fatalf("read back: %v", err)
	}
	m.Put(ctx, chunkKey("t/n/f", 5, 2), []byte("x"), meta.AnyVersion)
	if _, err := s.code(ctx, "t/n/f", ref); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged code: %v", err)
	}
	if err := s.deleteCode(ctx, "t/n/f", -1); err != nil {
		t.Fatal(err)
	}
	if kvs, _ := m.List(ctx, prefixCode); len(kvs) != 0 {
		t.Fatalf("%d chunks left", len(kvs))
	}
}

// BenchmarkStateIncr is the durable counter as the worker drives it: 100
// Incr on 10 keys (a word count's batch), then one flush (one synced
// write of the embedded metadata store); ns/op is per update.
func BenchmarkStateIncr(b *testing.B) {
	store, err := meta.OpenEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	st := newState(store, "t/n/f")
	ctx := context.Background()
	for k := 0; b.Loop(); k++ {
		if _, err := st.Incr(ctx, "k"+strconv.Itoa(k%10), 1); err != nil {
			b.Fatal(err)
		}
		if k%100 == 99 {
			if err := st.flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := st.flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStateIncrEach is the durable counter made durable per update
// (Incr then flush, as before grouped writes), from 4 goroutines on
// distinct keys.
func BenchmarkStateIncrEach(b *testing.B) {
	store, err := meta.OpenEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	st := newState(store, "t/n/f")
	var id atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		key := "k" + strconv.FormatInt(id.Add(1), 10)
		for pb.Next() {
			if _, err := st.Incr(context.Background(), key, 1); err != nil {
				b.Error(err)
				return
			}
			if err := st.flush(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestProcessRuntimeConfig(t *testing.T) {
	c := Config{Tenant: "t", Namespace: "n", Name: "f", Inputs: []string{"in"}, Runtime: "process"}
	if err := c.normalize(); err != nil || !c.isProcess() || c.Runtime != RuntimeProcess {
		t.Fatalf("runtime %q: %v", c.Runtime, err)
	}
	m := &Manager{cfg: ManagerConfig{BrokerURL: "pulsar://127.0.0.1:6650", WebURL: "http://127.0.0.1:8080", ProcessAuthToken: "tok"}}
	r := &runner{m: m, rec: Record{Config: c}, ucfg: []byte(`{"a":1}`)}
	env := strings.Join(r.processEnv(2, "/d", "/d/client.conf"), "\n") + "\n"
	for _, want := range []string{"MB_SERVICE_URL=pulsar://127.0.0.1:6650", "MB_ADMIN_URL=http://127.0.0.1:8080",
		"MB_AUTH_TOKEN=tok", "MB_CLIENT_CONFIG=/d/client.conf", "MB_FUNCTION_INSTANCE_ID=2",
		"MB_FUNCTION_INPUTS=persistent://t/n/in", "MB_FUNCTION_USER_CONFIG={\"a\":1}", "MB_FUNCTION_SUBSCRIPTION=t/n/f"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if conf := string(r.clientConf()); !strings.Contains(conf, "brokerServiceUrl=pulsar://127.0.0.1:6650\n") ||
		!strings.Contains(conf, "authParams=token:tok\n") {
		t.Errorf("client.conf:\n%s", conf)
	}
}

func TestLineLogSplitsLines(t *testing.T) {
	var buf strings.Builder
	l := &lineLog{log: slog.New(slog.NewTextHandler(&buf, nil)), stream: "stdout"}
	l.Write([]byte("one\ntw"))
	l.Write([]byte("o\nthree"))
	l.flush()
	if got := strings.Count(buf.String(), "stream=stdout"); got != 3 || !strings.Contains(buf.String(), "msg=two") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}
