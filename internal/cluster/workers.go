package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/supervise"
)

// Workers places function and connector instances on the brokers whose
// workers are enabled (supervise.Placement for cluster mode).
//
// Keys, under the cluster prefix, all bound to the broker's lease:
//
//	workers/nodes/<broker>                       {"id","httpUrl","kinds":[...]}
//	workers/claims/<kind>/<tenant>/<ns>/<name>/<i>  {"worker","httpUrl","report"}
//
// A broker runs an instance only while it holds the instance's claim,
// created in a transaction that requires the key not to exist (as bundle
// owner keys). A broker killed -9 loses its claims when its lease expires;
// the deletions wake the others' passes, and the broker the plan (Plan)
// names claims each one. A broker that loses its lease stops every
// instance it runs at once, before anyone else may claim them. Each pass
// also reconciles the workers with the stored records, so every broker
// answers the admin API with current runners (trigger works anywhere).
// The claim's value carries the instance's status, published by its
// runner every Publish when it changed: other brokers answer status and
// stats calls from it.
type Workers struct {
	m       *Manager
	o       WorkersOptions
	log     *slog.Logger
	metrics *workerMetrics
	kick    chan struct{}

	mu      sync.Mutex
	loads   map[string]supervise.Workload // by unit kind
	order   []supervise.Workload
	runs    map[string]bool // kinds this broker runs
	owned   map[supervise.Unit]*claim
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	nodeLease clientv3.LeaseID // the lease the node key was written with
}

type claim struct {
	rev       int64 // create revision of the claim key: its fencing token
	lease     clientv3.LeaseID
	published []byte
}

type claimRecord struct {
	Worker string          `json:"worker"`
	URL    string          `json:"httpUrl"`
	Report json.RawMessage `json:"report,omitempty"`
}

type nodeRecord struct {
	ID    string   `json:"id"`
	URL   string   `json:"httpUrl"`
	Kinds []string `json:"kinds"`
}

// WorkersOptions configure Workers.
type WorkersOptions struct {
	// Resync is the longest time between two passes (default 2 s); a pass
	// also follows every claim or worker that appears or goes, and every
	// change of a function's or connector's record.
	Resync time.Duration
	// Publish is how often the status of the instances run here is
	// published when it changed (default 1 s).
	Publish    time.Duration
	Registerer prometheus.Registerer
}

// NewWorkers makes the placement of this broker's workers; Start begins.
func NewWorkers(m *Manager, o WorkersOptions) *Workers {
	if o.Resync <= 0 {
		o.Resync = 2 * time.Second
	}
	if o.Publish <= 0 {
		o.Publish = time.Second
	}
	return &Workers{m: m, o: o, log: m.log.With("component", "workers"), metrics: newWorkerMetrics(o.Registerer),
		kick: make(chan struct{}, 1), loads: map[string]supervise.Workload{}, runs: map[string]bool{},
		owned: map[supervise.Unit]*claim{}}
}

func (w *Workers) nodesPrefix() string  { return w.m.o.Prefix + "workers/nodes/" }
func (w *Workers) claimsPrefix() string { return w.m.o.Prefix + "workers/claims/" }
func (w *Workers) claimKey(u supervise.Unit) string {
	return w.claimsPrefix() + u.Kind + "/" + u.Name + "/" + strconv.Itoa(u.ID)
}

// parseClaimKey reads <kind>/<tenant>/<ns>/<name>/<i> back.
func (w *Workers) parseClaimKey(key string) (supervise.Unit, bool) {
	rest, ok := strings.CutPrefix(key, w.claimsPrefix())
	if !ok {
		return supervise.Unit{}, false
	}
	kind, rest, ok := strings.Cut(rest, "/")
	i := strings.LastIndex(rest, "/")
	if !ok || i <= 0 {
		return supervise.Unit{}, false
	}
	id, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return supervise.Unit{}, false
	}
	return supervise.Unit{Kind: kind, Name: rest[:i], ID: id}, true
}

// Attach implements supervise.Placement.
func (w *Workers) Attach(l supervise.Workload) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range l.Kinds() {
		w.loads[k] = l
	}
	w.order = append(w.order, l)
}

// Mine implements supervise.Placement.
func (w *Workers) Mine(u supervise.Unit) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.owned[u]
	return ok
}

// Changed implements supervise.Placement.
func (w *Workers) Changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Local implements supervise.Placement.
func (w *Workers) Local() bool { return false }

// Remote implements supervise.Placement: the claims of kind/name.
func (w *Workers) Remote(ctx context.Context, kind, name string) (map[int]supervise.Remote, error) {
	cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
	defer cancel()
	resp, err := w.m.c.Get(cctx, w.claimsPrefix()+kind+"/"+name+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: read the claims of %s %s: %w", kind, name, err)
	}
	out := make(map[int]supervise.Remote, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		u, ok := w.parseClaimKey(string(kv.Key))
		if !ok || u.Name != name {
			continue
		}
		var r claimRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("cluster: claim %s: %w", kv.Key, err)
		}
		out[u.ID] = supervise.Remote{Worker: r.Worker, URL: r.URL, Report: r.Report}
	}
	return out, nil
}

// Available implements supervise.Placement.
func (w *Workers) Available(ctx context.Context, kind string) error {
	if w.runsKind(kind) {
		return nil // this broker runs them
	}
	nodes, err := w.nodes(ctx)
	if err != nil {
		return err
	}
	if len(nodes[kind]) > 0 {
		return nil
	}
	flag := "--functions-worker-enabled"
	if kind != "function" {
		flag = "--connectors-enabled"
	}
	return &supervise.UnavailableError{Msg: fmt.Sprintf("no live broker of the cluster runs %s instances (start brokers with %s=true)", kind, flag)}
}

// nodes reads the worker registry: live worker ids by kind.
func (w *Workers) nodes(ctx context.Context) (map[string][]string, error) {
	cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
	defer cancel()
	resp, err := w.m.c.Get(cctx, w.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: list workers: %w", err)
	}
	out := map[string][]string{}
	for _, kv := range resp.Kvs {
		var n nodeRecord
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, fmt.Errorf("cluster: worker key %s: %w", kv.Key, err)
		}
		for _, k := range n.Kinds {
			out[k] = append(out[k], n.ID)
		}
	}
	return out, nil
}

// Start runs the passes; kinds are the unit kinds this broker runs (none:
// it only answers the admin API).
func (w *Workers) Start(kinds ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	for _, k := range kinds {
		w.runs[k] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go w.run(ctx)
}

// Close ends the passes and stops the instances run here (their claims go
// with the lease, which the broker revokes as it leaves).
func (w *Workers) Close() {
	w.mu.Lock()
	if !w.started || w.cancel == nil {
		w.mu.Unlock()
		return
	}
	cancel, done := w.cancel, w.done
	w.cancel = nil
	w.mu.Unlock()
	cancel()
	<-done
	w.dropAll("")
}

func (w *Workers) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(w.o.Resync)
	defer tick.Stop()
	publish := time.NewTicker(w.o.Publish)
	defer publish.Stop()
	var watch clientv3.WatchChan
	var handled chan struct{} // the lost channel already acted on
	pass := true
	for {
		if watch == nil {
			watch = w.m.c.Watch(clientv3.WithRequireLeader(ctx), w.m.o.Prefix+"workers/", clientv3.WithPrefix())
		}
		_, lost := w.m.leaseState()
		if pass {
			select {
			case <-lost:
			default:
				w.pass(ctx)
			}
			pass = false
		}
		lostCh := lost
		if lost == handled {
			lostCh = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-lostCh:
			handled = lost
			w.dropAll("lease")
		case wr, ok := <-watch:
			if !ok {
				watch = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for _, ev := range wr.Events {
				// Claims and workers that appear or go; status updates
				// (modifications) wake nobody.
				if !ev.IsModify() {
					pass = true
				}
			}
		case <-w.kick:
			pass = true
		case <-tick.C:
			pass = true
		case <-publish.C:
			w.publish(ctx)
		}
	}
}

// pass reconciles the workers and takes, keeps or gives up claims by Plan.
func (w *Workers) pass(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 4*w.m.o.CallTimeout)
	defer cancel()
	lease, lost := w.m.leaseState()
	if err := w.register(ctx, lease); err != nil {
		w.log.Warn("workers: register failed", "err", err)
		return
	}
	w.mu.Lock()
	order := slices.Clone(w.order)
	w.mu.Unlock()
	var units []supervise.Unit
	for _, l := range order {
		us, err := l.Reconcile(ctx)
		if err != nil {
			w.log.Warn("workers: reconcile failed", "err", err)
			return // never give instances up on a failed read
		}
		units = append(units, us...)
	}
	nodes, err := w.nodes(ctx)
	if err != nil {
		w.log.Warn("workers: pass failed", "err", err)
		return
	}
	resp, err := w.m.c.Get(ctx, w.claimsPrefix(), clientv3.WithPrefix())
	if err != nil {
		w.log.Warn("workers: read claims failed", "err", err)
		return
	}
	held := map[supervise.Unit]string{}
	revs := map[supervise.Unit]int64{}
	for _, kv := range resp.Kvs {
		u, ok := w.parseClaimKey(string(kv.Key))
		var r claimRecord
		if !ok || json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		held[u], revs[u] = r.Worker, kv.CreateRevision
	}
	plan := Plan(units, nodes, held)
	wanted := make(map[supervise.Unit]bool, len(units))
	for _, u := range units {
		wanted[u] = true
	}
	me := w.m.o.ID
	w.mu.Lock()
	owned := make(map[supervise.Unit]*claim, len(w.owned))
	for u, c := range w.owned {
		owned[u] = c
	}
	w.mu.Unlock()
	for u, c := range owned {
		switch {
		case revs[u] != c.rev:
			w.lose(u, c, "fenced")
		case !wanted[u]:
			w.release(ctx, u, c, "")
		case plan[u] != me:
			w.release(ctx, u, c, "rebalance")
		}
	}
	for _, u := range units {
		if plan[u] != me || held[u] != "" || !w.runsKind(u.Kind) {
			continue
		}
		select {
		case <-lost:
			return
		default:
		}
		w.take(ctx, u, lease)
	}
	w.updateGauge()
}

func (w *Workers) runsKind(k string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[k]
}

// register writes this broker's worker key under the current lease.
func (w *Workers) register(ctx context.Context, lease clientv3.LeaseID) error {
	w.mu.Lock()
	kinds := make([]string, 0, len(w.runs))
	for k := range w.runs {
		kinds = append(kinds, k)
	}
	done := w.nodeLease == lease
	w.mu.Unlock()
	if done || len(kinds) == 0 {
		return nil
	}
	slices.Sort(kinds)
	b, _ := json.Marshal(nodeRecord{ID: w.m.o.ID, URL: w.m.o.HTTPURL, Kinds: kinds})
	cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
	defer cancel()
	if _, err := w.m.c.Put(cctx, w.nodesPrefix()+w.m.o.ID, string(b), clientv3.WithLease(lease)); err != nil {
		return err
	}
	w.mu.Lock()
	w.nodeLease = lease
	w.mu.Unlock()
	return nil
}

// take claims u (the key must not exist) and starts it here.
func (w *Workers) take(ctx context.Context, u supervise.Unit, lease clientv3.LeaseID) {
	w.mu.Lock()
	l := w.loads[u.Kind]
	w.mu.Unlock()
	if l == nil {
		return
	}
	key := w.claimKey(u)
	b, _ := json.Marshal(claimRecord{Worker: w.m.o.ID, URL: w.m.o.HTTPURL})
	cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
	defer cancel()
	resp, err := w.m.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease))).Commit()
	if err != nil {
		w.log.Warn("workers: claim failed", "unit", u.String(), "err", err)
		return
	}
	if !resp.Succeeded {
		return // another broker was faster
	}
	cur, _ := w.m.leaseState()
	if cur != lease { // lost meanwhile: the claim dies with the old lease
		return
	}
	w.mu.Lock()
	w.owned[u] = &claim{rev: resp.Header.Revision, lease: lease}
	w.mu.Unlock()
	w.metrics.taken.WithLabelValues(u.Kind).Inc()
	w.log.Info("workers: instance taken", "unit", u.String())
	l.RunUnit(u)
}

// release stops u here, then deletes its claim (guarded by its token), so
// that the broker the plan names takes it.
func (w *Workers) release(ctx context.Context, u supervise.Unit, c *claim, reason string) {
	w.forget(u, c)
	cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
	defer cancel()
	key := w.claimKey(u)
	if _, err := w.m.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", c.rev)).
		Then(clientv3.OpDelete(key)).Commit(); err != nil {
		w.log.Warn("workers: release failed (the claim goes with the lease)", "unit", u.String(), "err", err)
	}
	if reason != "" {
		w.metrics.lost.WithLabelValues(u.Kind, reason).Inc()
		w.log.Info("workers: instance handed over", "unit", u.String(), "reason", reason)
	}
}

// lose stops u here: its claim is gone.
func (w *Workers) lose(u supervise.Unit, c *claim, reason string) {
	w.forget(u, c)
	w.metrics.lost.WithLabelValues(u.Kind, reason).Inc()
	w.log.Warn("workers: instance claim lost; stopped", "unit", u.String(), "reason", reason)
}

// forget takes u out of the owned set (if c still is its claim) and stops it.
func (w *Workers) forget(u supervise.Unit, c *claim) {
	w.mu.Lock()
	if w.owned[u] != c {
		w.mu.Unlock()
		return
	}
	delete(w.owned, u)
	l := w.loads[u.Kind]
	w.mu.Unlock()
	if l != nil {
		l.StopUnit(u)
	}
	w.updateGauge()
}

// dropAll stops every instance run here (the lease is gone, or the broker
// leaves: reason "").
func (w *Workers) dropAll(reason string) {
	w.mu.Lock()
	owned := w.owned
	w.owned = map[supervise.Unit]*claim{}
	w.mu.Unlock()
	w.mu.Lock()
	loads := w.loads
	w.mu.Unlock()
	for u := range owned {
		if l := loads[u.Kind]; l != nil {
			l.StopUnit(u)
		}
		if reason != "" {
			w.metrics.lost.WithLabelValues(u.Kind, reason).Inc()
		}
	}
	if reason != "" && len(owned) > 0 {
		w.log.Warn("workers: lease lost; stopped every instance", "instances", len(owned))
	}
	w.updateGauge()
}

// publish writes the status of each instance run here into its claim when
// it changed; a claim found gone or taken over stops the instance.
func (w *Workers) publish(ctx context.Context) {
	w.mu.Lock()
	type item struct {
		u supervise.Unit
		c *claim
		l supervise.Workload
	}
	items := make([]item, 0, len(w.owned))
	for u, c := range w.owned {
		items = append(items, item{u, c, w.loads[u.Kind]})
	}
	w.mu.Unlock()
	for _, it := range items {
		rep := it.l.Report(it.u)
		if rep == nil || bytes.Equal(rep, it.c.published) {
			continue
		}
		b, _ := json.Marshal(claimRecord{Worker: w.m.o.ID, URL: w.m.o.HTTPURL, Report: rep})
		key := w.claimKey(it.u)
		cctx, cancel := context.WithTimeout(ctx, w.m.o.CallTimeout)
		resp, err := w.m.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", it.c.rev)).
			Then(clientv3.OpPut(key, string(b), clientv3.WithLease(it.c.lease))).Commit()
		cancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				w.log.Debug("workers: publish status failed", "unit", it.u.String(), "err", err)
			}
		case !resp.Succeeded:
			w.lose(it.u, it.c, "fenced")
		default:
			w.mu.Lock()
			it.c.published = rep
			w.mu.Unlock()
		}
	}
}

func (w *Workers) updateGauge() {
	w.mu.Lock()
	n := map[string]int{}
	for u := range w.owned {
		n[u.Kind]++
	}
	kinds := make([]string, 0, len(w.loads))
	for k := range w.loads {
		kinds = append(kinds, k)
	}
	w.mu.Unlock()
	for _, k := range kinds {
		w.metrics.instances.WithLabelValues(k).Set(float64(n[k]))
	}
}

// Owned lists the instances this broker runs (tests, logs).
func (w *Workers) Owned() []supervise.Unit {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]supervise.Unit, 0, len(w.owned))
	for u := range w.owned {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b supervise.Unit) int { return strings.Compare(a.String(), b.String()) })
	return out
}

type workerMetrics struct {
	instances *prometheus.GaugeVec
	taken     *prometheus.CounterVec
	lost      *prometheus.CounterVec
}

func newWorkerMetrics(reg prometheus.Registerer) *workerMetrics {
	m := &workerMetrics{
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mb_cluster_worker_instances",
			Help: "Function and connector instances this broker runs (holds the claim of), by kind."}, []string{"kind"}),
		taken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_cluster_worker_claims_taken_total",
			Help: "Instance claims this broker took, by kind."}, []string{"kind"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_cluster_worker_claims_lost_total",
			Help: "Instance claims this broker gave up or lost, by kind and reason (lease: its lease was lost; fenced: the claim was gone or taken over; rebalance: handed to another broker)."}, []string{"kind", "reason"}),
	}
	supervise.Register(reg, m.instances, m.taken, m.lost)
	return m
}
