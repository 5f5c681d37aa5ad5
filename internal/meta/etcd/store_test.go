package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/etcd"
	"github.com/messagebus/messagebus/internal/meta/metatest"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild()
	os.Exit(m.Run())
}

// one etcd member serves the tests of this package that do not stop it;
// each test gets its own key prefix.
var (
	sharedOnce sync.Once
	shared     *etcdtest.Cluster
	sharedErr  error
	prefixes   atomic.Int64
)

func sharedCluster(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcdtest")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = etcdtest.New(dir, 1)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func open(t *testing.T, c *etcdtest.Cluster, prefix string, timeout time.Duration) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newPrefix() string { return fmt.Sprintf("/test-%d-%d", os.Getpid(), prefixes.Add(1)) }

// TestConformance runs the meta.Store conformance suite on etcd.
func TestConformance(t *testing.T) {
	c := sharedCluster(t)
	metatest.Run(t, func(t *testing.T) metatest.Opener {
		prefix := newPrefix()
		return func(t *testing.T) meta.Store {
			s, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// TestPrefixIsolation: stores on different prefixes of one etcd never see
// each other's records, also where one prefix starts with the other.
func TestPrefixIsolation(t *testing.T) {
	c := sharedCluster(t)
	p := newPrefix()
	a, b := open(t, c, p, 0), open(t, c, p+"x", 0)
	ctx := context.Background()
	if _, err := a.Put(ctx, "/k", []byte("a"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "/k", []byte("b"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*etcd.Store{a, b} {
		kvs, err := s.List(ctx, "")
		if err != nil || len(kvs) != 1 || kvs[0].Key != "/k" {
			t.Fatalf("list of %s: %+v %v", s.Prefix(), kvs, err)
		}
	}
	// The record is the etcd key prefix+key with the value as is.
	resp, err := a.Client().Get(ctx, p+"/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "a" {
		t.Fatalf("raw etcd record: %+v %v", resp, err)
	}
}

// TestWatchResetAfterCompaction: a watch that falls behind a compaction
// delivers EventReset and then every later change.
func TestWatchResetAfterCompaction(t *testing.T) {
	c := sharedCluster(t)
	s := open(t, c, newPrefix(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Put(ctx, "/w/first", []byte("x"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	start, err := s.Client().Get(ctx, s.Prefix()+"/w/first")
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	for i := range 20 {
		resp, err := s.Client().Put(ctx, s.Prefix()+"/w/"+strconv.Itoa(i), "v")
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := s.Client().Compact(ctx, rev, clientv3WithPhysical()...); err != nil {
		t.Fatal(err)
	}
	// A watch that still had to deliver the changes from the first put on,
	// as one whose stream broke before a compaction does.
	events := s.WatchFrom(ctx, "/w/", start.Kvs[0].ModRevision)
	if _, err := s.Put(ctx, "/w/after", []byte("x"), meta.AnyVersion); err != nil {
		t.Fatal(err)
	}
	sawReset := false
	for {
		ev := next(t, events)
		if ev.Type == meta.EventReset {
			sawReset = true
			if ev.Revision > rev+1 {
				t.Fatalf("reset at revision %d, after the compaction at %d: changes in between are skipped", ev.Revision, rev)
			}
			continue
		}
		if ev.KV.Key == "/w/after" {
			break
		}
	}
	if !sawReset {
		t.Fatal("no reset although the watch's history was compacted")
	}
}

// TestWatchResumesAfterOutage: etcd stops and starts again on its data;
// the watch goes on, and changes made after the outage arrive.
func TestWatchResumesAfterOutage(t *testing.T) {
	c := etcdtest.StartProcesses(t, 1)
	s := open(t, c, "", time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := s.Watch(ctx, "/w/")
	if _, err := s.Put(ctx, "/w/a", []byte("1"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.KV.Key != "/w/a" {
		t.Fatalf("event %+v", ev)
	}
	c.Stop(0)
	// While etcd is down requests fail within the timeout; they never hang.
	start := time.Now()
	if _, err := s.Get(ctx, "/w/a"); err == nil || errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("get with etcd down: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("get with etcd down took %s, timeout 1s", d)
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	// The client reconnects within a second or so of etcd being back.
	putAfterOutage(t, s, "/w/a", "2")
	for {
		ev := next(t, events)
		if ev.Type == meta.EventReset {
			continue
		}
		if ev.KV.Key != "/w/a" || string(ev.KV.Value) != "2" {
			t.Fatalf("event after the outage: %+v", ev)
		}
		break
	}
}

// TestMetrics: requests are timed by op; failures are counted.
func TestMetrics(t *testing.T) {
	c := etcdtest.StartProcesses(t, 1)
	reg := prometheus.NewRegistry()
	s, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Timeout: 500 * time.Millisecond, Metrics: etcd.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, "/a", []byte("1"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	if _, err := s.Get(ctx, "/a"); err == nil {
		t.Fatal("get with etcd down succeeded")
	}
	if n := testutil.CollectAndCount(reg, "mb_metadata_request_seconds"); n < 2 {
		t.Fatalf("latency series: %d", n)
	}
	if got := testutil.ToFloat64(errorsOf(t, reg, "get")); got < 1 {
		t.Fatalf("get errors: %v", got)
	}
}

func errorsOf(t *testing.T, reg *prometheus.Registry, op string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mb_metadata_request_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetCounter().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no mb_metadata_request_errors_total{op=%q}", op)
	return nil
}

// putAfterOutage writes key once etcd answers again, within 10 s.
func putAfterOutage(t *testing.T, s *etcd.Store, key, value string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Put(context.Background(), key, []byte(value), meta.AnyVersion)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s after the outage: %v", key, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	eps, err := etcd.ParseURL("etcd://a:2379,b:2379/")
	if err != nil || len(eps) != 2 || eps[0] != "a:2379" || eps[1] != "b:2379" {
		t.Fatalf("%v %v", eps, err)
	}
	for _, bad := range []string{"http://a:2379", "etcd://", "etcd://a:1/x"} {
		if _, err := etcd.ParseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func next(t *testing.T, events <-chan meta.Event) meta.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no event in 15 s")
	}
	return meta.Event{}
}
