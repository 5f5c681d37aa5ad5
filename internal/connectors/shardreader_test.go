package connectors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type memCheckpoints struct {
	mu      sync.Mutex
	m       map[string]string
	changed chan struct{} // a value a Put, when not nil
}

func (c *memCheckpoints) Get(_ context.Context, k string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return []byte(v), nil
	}
	return nil, nil
}

func (c *memCheckpoints) Put(_ context.Context, k string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = string(v)
	if c.changed != nil {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// fakeStream has a parent shard "p" (closed) split into "c1" and "c2"
// (open, caught up after their records); every shard's first read is
// throttled and its second read finds the iterator expired.
type fakeStream struct {
	mu    sync.Mutex
	recs  map[string][]string // shard -> record values, in order
	reads map[string]int
}

func (f *fakeStream) ListShards(context.Context) ([]Shard, error) {
	return []Shard{{ID: "c1", Parent: "p"}, {ID: "c2", Parent: "p"}, {ID: "p"}}, nil
}

// An iterator is "shard/position".
func (f *fakeStream) Iterator(_ context.Context, shard, after string) (string, error) {
	pos := 0
	if after != "" {
		n, err := strconv.Atoi(after)
		if err != nil {
			return "", err
		}
		pos = n + 1
	}
	return shard + "/" + strconv.Itoa(pos), nil
}

func (f *fakeStream) Read(_ context.Context, shard, it string) (*ShardBatch, error) {
	f.mu.Lock()
	f.reads[shard]++
	n := f.reads[shard]
	f.mu.Unlock()
	switch n {
	case 1:
		return nil, ErrThrottled
	case 2:
		return nil, ErrIteratorExpired
	}
	pos, _ := strconv.Atoi(it[len(shard)+1:])
	recs := f.recs[shard]
	b := &ShardBatch{}
	// Two records a read.
	for i := pos; i < len(recs) && i < pos+2; i++ {
		b.Records = append(b.Records, &Record{Key: shard, Value: []byte(recs[i])})
		b.Last = strconv.Itoa(i)
	}
	end := pos + len(b.Records)
	switch {
	case end < len(recs) || shard != "p":
		b.Next = shard + "/" + strconv.Itoa(end)
		b.CaughtUp = end >= len(recs)
	}
	return b, nil
}

func TestReadShardsParentsFirstCheckpointsAfterReceipts(t *testing.T) {
	f := &fakeStream{recs: map[string][]string{"p": {"p0", "p1", "p2"}, "c1": {"a0", "a1", "a2"}, "c2": {"b0"}}, reads: map[string]int{}}
	cps := &memCheckpoints{m: map[string]string{}, changed: make(chan struct{}, 1)}
	var mu sync.Mutex
	var got []string
	failOnce := true
	env := &SourceEnv{Name: "t", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Checkpoints: cps}
	env.send = func(_ context.Context, r *Record, done func(error)) {
		mu.Lock()
		// The first send of c1's second read fails: that read comes again
		// from the checkpoint, after the session restarts.
		if string(r.Value) == "a2" && failOnce {
			failOnce = false
			mu.Unlock()
			done(errors.New("no receipt"))
			return
		}
		got = append(got, string(r.Value))
		mu.Unlock()
		go done(nil)
	}
	s := &ShardSettings{}
	if err := s.CheckShards(100); err != nil {
		t.Fatal(err)
	}
	s.PollIntervalMs = 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := ReadShards(ctx, env, "fake", f, s)
	if err == nil || !strings.Contains(err.Error(), "no receipt") || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("first session: %v, want the send failure of c1", err)
	}
	// The second session resumes from the checkpoints.
	f.reads = map[string]int{}
	rctx, rcancel := context.WithCancel(ctx)
	go func() {
		for {
			cps.mu.Lock()
			done := cps.m["shard/c1"] == "2" && cps.m["shard/c2"] == "0"
			cps.mu.Unlock()
			if done {
				rcancel()
				return
			}
			select {
			case <-cps.changed:
			case <-rctx.Done():
				return
			}
		}
	}()
	if err := ReadShards(rctx, env, "fake", f, s); err != nil {
		t.Fatalf("second session: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	pos := map[string]int{}
	for i, v := range got {
		pos[v] = i
	}
	for _, v := range []string{"p0", "p1", "p2", "a0", "a1", "a2", "b0"} {
		if _, ok := pos[v]; !ok {
			t.Fatalf("%s not sent: %v", v, got)
		}
	}
	if pos["p2"] > pos["a0"] || pos["p2"] > pos["b0"] || pos["a0"] > pos["a1"] || pos["a1"] > pos["a2"] {
		t.Errorf("order: %v", got)
	}
	if cps.m["shard/p"] != ShardEnd || cps.m["shard/c1"] != "2" || cps.m["shard/c2"] != "0" {
		t.Errorf("checkpoints %v", cps.m)
	}
}

func TestShardSettingsChecks(t *testing.T) {
	s := &ShardSettings{}
	if err := s.CheckShards(1000); err != nil || s.InitialPosition != "TRIM_HORIZON" || s.MaxRecords != 1000 || s.PollIntervalMs != 500 {
		t.Fatalf("defaults: %v %+v", err, s)
	}
	for _, c := range []struct {
		s    ShardSettings
		want string
	}{
		{ShardSettings{InitialPosition: "EARLIEST"}, `initialPosition "EARLIEST": TRIM_HORIZON or LATEST`},
		{ShardSettings{MaxRecords: 1001}, "maxRecords: 1 to 1000"},
		{ShardSettings{PollIntervalMs: -1}, "pollIntervalMs: at least 0"},
	} {
		if err := c.s.CheckShards(1000); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}
