package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/supervise"
)

// What the worker gives its placement (supervise.Workload). Standalone
// (supervise.Local) none of it is used: Start runs every stored function.
// In cluster mode every broker's manager keeps a runner for every function
// (so that trigger works on any broker), and runs only the instances the
// placement gives it.

// KindFunction is the unit kind of function instances.
const KindFunction = "function"

// Kinds implements supervise.Workload.
func (m *Manager) Kinds() []string { return []string{KindFunction} }

// sameRecord reports whether a runner made from a still matches b.
func sameRecord(a, b Record) bool {
	return a.Version == b.Version && a.UpdateTime == b.UpdateTime && a.Stopped == b.Stopped
}

// Reconcile implements supervise.Workload: runners of changed records are
// replaced, runners of deleted ones closed (their last instance stopped
// here removes the subscription when cleanupSubscription is set). A
// function gets a runner on a broker only when it first needs one (an
// instance placed here, a trigger): compiling a module takes a while, and
// most brokers run few of a function's instances.
func (m *Manager) Reconcile(ctx context.Context) ([]supervise.Unit, error) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	recs, err := m.store.list(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	var units []supervise.Unit
	seen := make(map[string]bool, len(recs))
	for _, rec := range recs {
		fqfn := rec.Config.FQFN()
		seen[fqfn] = true
		if !rec.Stopped {
			for id := range rec.Config.Parallelism {
				units = append(units, supervise.Unit{Kind: KindFunction, Name: fqfn, ID: id})
			}
		}
		if r := m.runner(fqfn); r == nil || sameRecord(r.rec, rec) {
			continue
		}
		sig := [2]int64{rec.Version, rec.UpdateTime}
		if m.failed[fqfn] == sig {
			continue
		}
		if err := m.apply(ctx, rec); err != nil {
			m.failed[fqfn] = sig
			m.log.Error("function not loaded on this broker", "function", fqfn, "error", err)
			continue
		}
		delete(m.failed, fqfn)
	}
	for _, fqfn := range m.runners.Keys() {
		if seen[fqfn] {
			continue
		}
		if r, ok := m.runners.Remove(fqfn); ok {
			r.close(r.rec.Config.cleanupSubscription())
			m.metrics.forget(&r.rec.Config)
			m.log.Info("function deleted through another broker", "function", fqfn)
		}
	}
	for fqfn := range m.failed {
		if !seen[fqfn] {
			delete(m.failed, fqfn)
		}
	}
	return units, nil
}

// RunUnit implements supervise.Workload. When this broker has no runner of
// the function yet, it loads it in the background (compiling a module
// takes a while, and the placement's pass must go on); the instance
// starts then if it is still placed here.
func (m *Manager) RunUnit(u supervise.Unit) {
	if r := m.runner(u.Name); r != nil {
		if !r.rec.Stopped {
			r.startInstances(u.ID)
		}
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		rec, _, err := m.store.get(ctx, u.Name)
		if err == nil {
			_, err = m.load(ctx, rec)
		}
		if err != nil {
			m.log.Error("function instance not started", "function", u.Name, "instance", u.ID, "error", err)
		}
	}()
}

// StopUnit implements supervise.Workload. It waits for a load under way
// (applyMu), so that an instance is never started after its claim went.
func (m *Manager) StopUnit(u supervise.Unit) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if r := m.runner(u.Name); r != nil {
		r.stopInstances(false, u.ID)
	}
}

// load makes the runner of rec on this broker (starting the instances
// placed here) unless another call made it meanwhile.
func (m *Manager) load(ctx context.Context, rec Record) (*runner, error) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	fqfn := rec.Config.FQFN()
	if r := m.runner(fqfn); r != nil {
		return r, nil
	}
	if err := m.apply(ctx, rec); err != nil {
		return nil, err
	}
	return m.runner(fqfn), nil
}

// report is what a broker publishes of an instance it runs.
type report struct {
	Status InstanceStatusData `json:"status"`
	Stats  InstanceData       `json:"stats"`
}

// Report implements supervise.Workload.
func (m *Manager) Report(u supervise.Unit) []byte {
	r := m.runner(u.Name)
	if r == nil {
		return nil
	}
	i, ok := r.instances.At(u.ID)
	if !ok {
		return nil
	}
	b, _ := json.Marshal(report{Status: m.instanceStatus(i), Stats: instanceStats(i)})
	return b
}

// remote returns the reports of fqfn's instances other brokers run.
func (m *Manager) remote(ctx context.Context, fqfn string) (map[int]report, error) {
	all, err := m.place.Remote(ctx, KindFunction, fqfn)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	out := make(map[int]report, len(all))
	for id, r := range all {
		var rep report
		if len(r.Report) > 0 {
			if err := json.Unmarshal(r.Report, &rep); err != nil {
				return nil, fmt.Errorf("status of %s instance %d published by %s: %w", fqfn, id, r.Worker, err)
			}
		}
		rep.Status.WorkerID = r.Worker
		if rep.Status.LatestUserExceptions == nil {
			rep.Status.LatestUserExceptions = []ExceptionEntry{}
		}
		if rep.Status.LatestSystemExceptions == nil {
			rep.Status.LatestSystemExceptions = []ExceptionEntry{}
		}
		if rep.Stats.UserMetrics == nil {
			rep.Stats.UserMetrics = map[string]string{}
		}
		out[id] = rep
	}
	return out, nil
}

// elsewhere is an ElsewhereError when instance (>= 0) runs on another
// broker: its start, stop and restart are sent there.
func (m *Manager) elsewhere(ctx context.Context, fqfn string, instance int) error {
	if instance < 0 || m.place.Local() || m.place.Mine(supervise.Unit{Kind: KindFunction, Name: fqfn, ID: instance}) {
		return nil
	}
	all, err := m.place.Remote(ctx, KindFunction, fqfn)
	if err != nil {
		return err
	}
	if r, ok := all[instance]; ok {
		return &supervise.ElsewhereError{Worker: r.Worker, URL: r.URL}
	}
	return nil
}

// restartEverywhere restarts every instance on every broker: the record's
// update time changes, which makes each broker's Reconcile replace its
// runner.
func (m *Manager) restartEverywhere(ctx context.Context, fqfn string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, version, err := m.store.get(ctx, fqfn)
	if err != nil {
		return err
	}
	rec.Stopped = false
	rec.UpdateTime = max(nowMillis(), rec.UpdateTime+1)
	if err := m.store.put(ctx, rec, version); err != nil {
		return err
	}
	return m.apply(ctx, rec)
}

// watch wakes the placement when a function record changes (through any
// broker), until Close.
func (m *Manager) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWatch = cancel
	ch := m.cfg.Meta.Watch(ctx, prefixConfig)
	go func() {
		for range ch {
			m.place.Changed()
		}
	}()
}

// Available is nil when some broker runs function instances.
func (m *Manager) Available(ctx context.Context) error {
	return m.place.Available(ctx, KindFunction)
}
