package connectors

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/messagebus/messagebus/internal/supervise"
)

// What the worker gives its placement (supervise.Workload); unused
// standalone (supervise.Local), where Start runs every stored connector.
// Unit kinds are "source" and "sink".

// Kinds implements supervise.Workload.
func (m *Manager) Kinds() []string { return []string{string(KindSource), string(KindSink)} }

// notAssigned is the status error of an instance no broker runs yet.
const notAssigned = "not running: no worker has taken this instance yet"

// Reconcile implements supervise.Workload: runners for new or changed
// records, none for deleted ones.
func (m *Manager) Reconcile(ctx context.Context) ([]supervise.Unit, error) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	var units []supervise.Unit
	seen := map[string]bool{}
	for _, kind := range []Kind{KindSource, KindSink} {
		recs, err := m.store.list(ctx, kind, "")
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind.Plural(), err)
		}
		for _, rec := range recs {
			fqn := rec.Config.FQN()
			seen[runnerKey(kind, fqn)] = true
			if !rec.Stopped {
				for id := range rec.Config.Parallelism {
					units = append(units, supervise.Unit{Kind: string(kind), Name: fqn, ID: id})
				}
			}
			if r := m.runner(kind, fqn); r != nil && r.rec.UpdateTime == rec.UpdateTime && r.rec.Stopped == rec.Stopped {
				continue
			}
			if err := m.apply(kind, rec); err != nil {
				m.log.Error("connector not loaded on this broker", "kind", kind, "connector", fqn, "error", err)
			}
		}
	}
	for _, key := range m.runners.Keys() {
		if seen[key] {
			continue
		}
		if r, ok := m.runners.Remove(key); ok {
			r.stopInstances(r.kind == KindSink && r.rec.Config.cleanupSubscription())
			m.metrics.forget(r.kind, &r.rec.Config)
			m.log.Info("connector deleted through another broker", "kind", r.kind, "connector", r.rec.Config.FQN())
		}
	}
	return units, nil
}

// RunUnit implements supervise.Workload.
func (m *Manager) RunUnit(u supervise.Unit) {
	if r := m.runner(Kind(u.Kind), u.Name); r != nil && !r.rec.Stopped {
		r.startInstances(u.ID)
	}
}

// StopUnit implements supervise.Workload.
func (m *Manager) StopUnit(u supervise.Unit) {
	if r := m.runner(Kind(u.Kind), u.Name); r != nil {
		r.stopInstances(false, u.ID)
	}
}

// Report implements supervise.Workload: the instance's status.
func (m *Manager) Report(u supervise.Unit) []byte {
	r := m.runner(Kind(u.Kind), u.Name)
	if r == nil {
		return nil
	}
	i := r.instanceAt(u.ID)
	if i == nil {
		return nil
	}
	b, _ := json.Marshal(i.status(r.kind, m.cfg.WorkerID))
	return b
}

// remote returns the statuses of the instances other brokers run.
func (m *Manager) remote(ctx context.Context, kind Kind, fqn string) (map[int]InstanceStatusData, error) {
	all, err := m.place.Remote(ctx, string(kind), fqn)
	if err != nil {
		return nil, err
	}
	out := make(map[int]InstanceStatusData, len(all))
	for id, r := range all {
		var d InstanceStatusData
		if len(r.Report) > 0 {
			if err := json.Unmarshal(r.Report, &d); err != nil {
				return nil, fmt.Errorf("status of %s %s instance %d published by %s: %w", kind, fqn, id, r.Worker, err)
			}
		} else {
			zero := int64(0)
			if kind == KindSource {
				d.NumReceivedFromSource, d.NumWritten = &zero, &zero
			} else {
				d.NumReadFromPulsar, d.NumWrittenToSink = &zero, &zero
			}
		}
		d.WorkerID = r.Worker
		if d.LatestSystemExceptions == nil {
			d.LatestSystemExceptions = []ExceptionEntry{}
		}
		out[id] = d
	}
	return out, nil
}

// elsewhere is an ElsewhereError when instance (>= 0) runs on another
// broker: its start, stop and restart are sent there.
func (m *Manager) elsewhere(ctx context.Context, kind Kind, fqn string, instance int) error {
	if instance < 0 || m.place.Local() || m.place.Mine(supervise.Unit{Kind: string(kind), Name: fqn, ID: instance}) {
		return nil
	}
	all, err := m.place.Remote(ctx, string(kind), fqn)
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
func (m *Manager) restartEverywhere(ctx context.Context, kind Kind, fqn string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, version, err := m.store.get(ctx, kind, fqn)
	if err != nil {
		return err
	}
	rec.Stopped = false
	rec.UpdateTime = max(nowMillis(), rec.UpdateTime+1)
	if err := m.store.put(ctx, kind, rec, version); err != nil {
		return err
	}
	return m.apply(kind, rec)
}

// watch wakes the placement when a connector record changes (through any
// broker), until Close.
func (m *Manager) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWatch = cancel
	for _, kind := range []Kind{KindSource, KindSink} {
		ch := m.store.meta.Watch(ctx, prefix+kind.Plural()+"/config/")
		go func() {
			for range ch {
				m.place.Changed()
			}
		}()
	}
}

// Available is nil when some broker runs connector instances.
func (m *Manager) Available(ctx context.Context) error {
	return m.place.Available(ctx, string(KindSource))
}
