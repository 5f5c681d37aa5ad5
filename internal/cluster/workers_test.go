package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/cluster"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
)

func units(name string, n int) []supervise.Unit {
	var us []supervise.Unit
	for i := range n {
		us = append(us, supervise.Unit{Kind: "function", Name: name, ID: i})
	}
	return us
}

func counts(plan map[supervise.Unit]string) map[string]int {
	c := map[string]int{}
	for _, w := range plan {
		c[w]++
	}
	return c
}

func TestPlanSpreadsKeepsAndRebalances(t *testing.T) {
	us := units("t/ns/f", 3)
	workers := map[string][]string{"function": {"a", "b", "c"}}
	plan := cluster.Plan(us, workers, nil)
	if c := counts(plan); len(plan) != 3 || c["a"] != 1 || c["b"] != 1 || c["c"] != 1 {
		t.Fatalf("3 instances over 3 workers: %v", plan)
	}
	// The same view gives the same plan on every broker.
	if again := cluster.Plan(append([]supervise.Unit{}, us[2], us[0], us[1]), map[string][]string{"function": {"c", "a", "b"}}, nil); fmt.Sprint(again) != fmt.Sprint(plan) {
		t.Fatalf("plan depends on the order of the view: %v vs %v", again, plan)
	}
	// Holders keep their instances while within the bound.
	held := map[supervise.Unit]string{us[0]: "c", us[1]: "a", us[2]: "b"}
	if p := cluster.Plan(us, workers, held); fmt.Sprint(p) != fmt.Sprint(held) {
		t.Fatalf("held instances moved: %v", p)
	}
	// A holder above the bound gives up its last instances only.
	held = map[supervise.Unit]string{us[0]: "a", us[1]: "a", us[2]: "a"}
	p := cluster.Plan(us, workers, held)
	if p[us[0]] != "a" || p[us[1]] == "a" || p[us[2]] == "a" || p[us[1]] == p[us[2]] {
		t.Fatalf("overloaded holder: %v", p)
	}
	// A dead holder's instances are placed again; kinds without workers stay unplaced.
	more := append(units("t/ns/g", 5), supervise.Unit{Kind: "source", Name: "t/ns/s", ID: 0})
	p = cluster.Plan(append(us, more...), map[string][]string{"function": {"a", "b"}}, map[supervise.Unit]string{us[0]: "dead"})
	if c := counts(p); len(p) != 8 || c["a"] != 4 || c["b"] != 4 {
		t.Fatalf("8 instances over 2 workers: %v", c)
	}
	// A joining worker takes its share; the others keep the rest.
	p2 := cluster.Plan(append(us, units("t/ns/g", 5)...), map[string][]string{"function": {"a", "b", "c"}}, p)
	c := counts(p2)
	if c["c"] < 2 || c["a"] > 3 || c["b"] > 3 {
		t.Fatalf("after c joined: %v", c)
	}
	moved := 0
	for u, w := range p2 {
		if p[u] != w {
			moved++
		}
	}
	if moved != c["c"] {
		t.Fatalf("%d instances moved, %d to the new worker", moved, c["c"])
	}
}

// fakeLoad is a worker: the wanted units are shared (the stored records),
// the running ones are its own.
type fakeLoad struct {
	wanted  *[]supervise.Unit
	wmu     *sync.Mutex
	mu      sync.Mutex
	running map[supervise.Unit]bool
	starts  int
}

func (f *fakeLoad) Kinds() []string { return []string{"function"} }
func (f *fakeLoad) Reconcile(context.Context) ([]supervise.Unit, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return append([]supervise.Unit{}, *f.wanted...), nil
}
func (f *fakeLoad) RunUnit(u supervise.Unit) {
	f.mu.Lock()
	f.running[u] = true
	f.starts++
	f.mu.Unlock()
}
func (f *fakeLoad) StopUnit(u supervise.Unit) {
	f.mu.Lock()
	delete(f.running, u)
	f.mu.Unlock()
}
func (f *fakeLoad) Report(u supervise.Unit) []byte {
	if !f.runs(u) {
		return nil
	}
	return []byte(`{"running":true}`)
}
func (f *fakeLoad) runs(u supervise.Unit) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[u]
}
func (f *fakeLoad) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.running)
}

type workerNode struct {
	id   string
	m    *cluster.Manager
	w    *cluster.Workers
	load *fakeLoad
	reg  *prometheus.Registry
}

func startWorker(t *testing.T, c *clientv3.Client, id string, wanted *[]supervise.Unit, wmu *sync.Mutex, run bool) *workerNode {
	t.Helper()
	m, err := cluster.New(context.Background(), cluster.Options{Client: c, Prefix: "/wk/", ID: id,
		PulsarURL: "pulsar://" + id, HTTPURL: "http://" + id, LeaseTTL: 2 * time.Second, LoadInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w := cluster.NewWorkers(m, cluster.WorkersOptions{Resync: 500 * time.Millisecond, Publish: 100 * time.Millisecond, Registerer: reg})
	load := &fakeLoad{wanted: wanted, wmu: wmu, running: map[supervise.Unit]bool{}}
	w.Attach(load)
	if run {
		w.Start("function")
	} else {
		w.Start()
	}
	return &workerNode{id: id, m: m, w: w, load: load, reg: reg}
}

// runners maps each wanted unit to the nodes running it.
func runners(nodes []*workerNode, us []supervise.Unit) map[supervise.Unit][]string {
	out := map[supervise.Unit][]string{}
	for _, u := range us {
		for _, n := range nodes {
			if n.load.runs(u) {
				out[u] = append(out[u], n.id)
			}
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exactlyOnce reports whether each unit runs on exactly one node, and on
// how many distinct nodes they run.
func exactlyOnce(nodes []*workerNode, us []supervise.Unit) (bool, int) {
	r := runners(nodes, us)
	where := map[string]bool{}
	for _, u := range us {
		if len(r[u]) != 1 {
			return false, 0
		}
		where[r[u][0]] = true
	}
	return true, len(where)
}

// TestWorkersSpreadFailoverAndFencing: 3 instances over 3 brokers, one
// each; a broker cut off from etcd (its client closed: as kill -9 for the
// others) loses its instances to the survivors after its lease, and stops
// them itself; a revoked lease stops a broker's instances at once; a
// broker that joins takes its share; status reports are readable from any
// broker; a broker with its worker off claims nothing.
func TestWorkersSpreadFailoverAndFencing(t *testing.T) {
	e := etcdtest.Start(t, 1)
	c := e.Client(t)
	ctx := context.Background()
	var wmu sync.Mutex
	wanted := units("t/ns/f", 3)
	var nodes []*workerNode
	cClient := e.Client(t) // closed below: c is cut off, as if it died
	for _, id := range []string{"a", "b", "c"} {
		cl := c
		if id == "c" {
			cl = cClient
		}
		nodes = append(nodes, startWorker(t, cl, id, &wanted, &wmu, true))
	}
	api := startWorker(t, c, "api", &wanted, &wmu, false) // worker disabled
	defer func() {
		for _, n := range append(nodes[:2], api) {
			n.w.Close()
			n.m.Close()
		}
	}()
	waitUntil(t, "one instance per broker", 10*time.Second, func() bool {
		ok, spread := exactlyOnce(nodes, wanted)
		return ok && spread == 3
	})
	if api.load.count() != 0 {
		t.Fatal("a broker with its worker off runs instances")
	}
	if err := api.w.Available(ctx, "function"); err != nil {
		t.Fatalf("Available on the API-only broker: %v", err)
	}
	if err := api.w.Available(ctx, "source"); err == nil || !strings.Contains(err.Error(), "--connectors-enabled") {
		t.Fatalf("Available(source) with no connector worker: %v", err)
	}
	waitUntil(t, "status published", 5*time.Second, func() bool {
		rem, err := api.w.Remote(ctx, "function", "t/ns/f")
		if err != nil || len(rem) != 3 {
			return false
		}
		seen := map[string]bool{}
		for _, r := range rem {
			if string(r.Report) != `{"running":true}` || !strings.HasPrefix(r.URL, "http://") {
				return false
			}
			seen[r.Worker] = true
		}
		return len(seen) == 3
	})

	// c is cut off: its lease expires, a and b take its instance over; c
	// stops it when it notices that its lease is gone.
	var cUnit supervise.Unit
	for _, u := range wanted {
		if nodes[2].load.runs(u) {
			cUnit = u
		}
	}
	cutAt := time.Now()
	cClient.Close()
	waitUntil(t, "c's instance on a or b", 15*time.Second, func() bool {
		ok, spread := exactlyOnce(nodes[:2], wanted)
		return ok && spread == 2
	})
	t.Logf("c's instance %s taken over after %s", cUnit, time.Since(cutAt).Round(time.Millisecond))
	waitUntil(t, "c stopped its instance", 10*time.Second, func() bool { return nodes[2].load.count() == 0 })
	nodes[2].w.Close()
	nodes[2].m.Close()

	// a's lease is revoked: a stops its instances at once, b takes them.
	if _, err := c.Revoke(ctx, aLease(t, c, "/wk/", "a")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a gave up its claims", 5*time.Second, func() bool { return testutil.ToFloat64(workerLost(nodes[0].reg)) >= 1 })
	waitUntil(t, "every instance running once after a's loss", 15*time.Second, func() bool {
		ok, _ := exactlyOnce(nodes[:2], wanted)
		return ok
	})

	// Units removed (function deleted) stop everywhere; new ones spread.
	wmu.Lock()
	wanted = units("t/ns/g", 4)
	wmu.Unlock()
	for _, n := range nodes[:2] {
		n.w.Changed()
	}
	waitUntil(t, "t/ns/g placed, t/ns/f stopped", 15*time.Second, func() bool {
		ok, spread := exactlyOnce(nodes[:2], wanted)
		return ok && spread == 2 && nodes[0].load.count()+nodes[1].load.count() == 4
	})

	// d joins: it takes its share (4 over 3: 2, 1, 1).
	d := startWorker(t, c, "d", &wanted, &wmu, true)
	defer func() { d.w.Close(); d.m.Close() }()
	all := []*workerNode{nodes[0], nodes[1], d}
	waitUntil(t, "d took its share", 15*time.Second, func() bool {
		ok, spread := exactlyOnce(all, wanted)
		return ok && spread == 3
	})
	if v := testutil.ToFloat64(workerGauge(d.reg)); v < 1 {
		t.Fatalf("d's instances gauge %v", v)
	}
}

func workerLost(reg *prometheus.Registry) prometheus.Collector {
	return collectorOf(reg, "mb_cluster_worker_claims_lost_total")
}

func workerGauge(reg *prometheus.Registry) prometheus.Collector {
	return collectorOf(reg, "mb_cluster_worker_instances")
}

// collectorOf sums a metric family of reg (every label set) as one gauge.
func collectorOf(reg *prometheus.Registry, name string) prometheus.Collector {
	mfs, _ := reg.Gather()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sum"})
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if m.Counter != nil {
				g.Add(m.Counter.GetValue())
			}
			if m.Gauge != nil {
				g.Add(m.Gauge.GetValue())
			}
		}
	}
	return g
}
