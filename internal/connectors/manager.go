package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/prometheus/client_golang/prometheus"
)

// ManagerConfig configures the connectors worker.
type ManagerConfig struct {
	Meta meta.Store
	// BrokerURL is the node's own pulsar:// URL; AuthToken the worker's
	// token when authentication is on.
	BrokerURL  string
	AuthToken  string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// WorkerID names this node in status answers.
	WorkerID string
	// Vault, when set, resolves vault:<path>#<field> secret references
	// (the access plane's Vault: --vault-addr, --vault-mount).
	Vault VaultReader
	// Schemas, when set, lets sinks read the schemas of their messages.
	Schemas SchemaReader
	// Placement decides which instances this node runs (nil: all of them,
	// supervise.Local). In cluster mode it is package cluster's.
	Placement supervise.Placement
}

// Manager runs the connectors stored in the metadata store and serves the
// admin API's sources and sinks calls.
type Manager struct {
	cfg     ManagerConfig
	log     *slog.Logger
	store   store
	client  pulsar.Client
	metrics *metrics
	runners supervise.Registry[*runner] // by kind + ":" + fqn
	place   supervise.Placement

	// applyMu serializes the changes of runners: the API's calls and
	// Reconcile (cluster mode).
	applyMu   sync.Mutex
	stopWatch context.CancelFunc
}

// BadRequestError is a problem with what the caller sent (400).
type BadRequestError = supervise.BadRequestError

// NotFoundError is a missing instance (404).
type NotFoundError = supervise.NotFoundError

// ErrConflict is a concurrent change (409).
var ErrConflict = supervise.ErrConflict

// NewManager makes the worker; Start runs the stored connectors.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client, err := supervise.NewClient(cfg.BrokerURL, cfg.AuthToken, cfg.Logger.With("component", "connectors-client"))
	if err != nil {
		return nil, fmt.Errorf("connectors %w", err)
	}
	if cfg.Placement == nil {
		cfg.Placement = supervise.Local{}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: store{meta: cfg.Meta}, client: client,
		metrics: newMetrics(cfg.Registerer), place: cfg.Placement, stopWatch: func() {}}
	m.place.Attach(m)
	if !m.place.Local() {
		m.watch() // changes made through other brokers wake the placement
	}
	return m, nil
}

func runnerKey(kind Kind, fqn string) string { return string(kind) + ":" + fqn }

// Start runs every stored connector that is not stopped.
func (m *Manager) Start(ctx context.Context) error {
	if !m.place.Local() {
		return nil // the placement's passes run the connectors (Reconcile)
	}
	for _, kind := range []Kind{KindSource, KindSink} {
		recs, err := m.store.list(ctx, kind, "")
		if err != nil {
			return fmt.Errorf("list %s: %w", kind.Plural(), err)
		}
		for _, rec := range recs {
			if err := m.apply(kind, rec); err != nil {
				m.log.Error("connector not started", "kind", kind, "connector", rec.Config.FQN(), "error", err)
			}
		}
	}
	return nil
}

// Close stops every connector (subscriptions and checkpoints stay).
func (m *Manager) Close() {
	m.stopWatch()
	for _, r := range m.runners.Close() {
		r.stopInstances(false)
	}
	m.client.Close()
}

// apply replaces the connector's runner and starts it unless stopped.
func (m *Manager) apply(kind Kind, rec entry) error {
	b, ok := builtin(kind, rec.Config.Type())
	if !ok {
		return fmt.Errorf("no built-in %s of type %q", kind, rec.Config.Type())
	}
	r := &runner{m: m, kind: kind, rec: rec, b: b, instances: supervise.NewGroup[*instance](rec.Config.Parallelism),
		log: m.log.With("kind", kind, "connector", rec.Config.FQN(), "type", b.Name)}
	old, replaced, err := m.runners.Put(runnerKey(kind, rec.Config.FQN()), r)
	if err != nil {
		return errors.New("connectors worker is closed")
	}
	if replaced {
		old.stopInstances(false)
	}
	if !rec.Stopped {
		m.startPlaced(r)
	}
	return nil
}

// startPlaced starts the runner's instances that run on this node.
func (m *Manager) startPlaced(r *runner) {
	if m.place.Local() {
		r.startInstances()
		return
	}
	if ids := supervise.MineIDs(m.place, string(r.kind), r.rec.Config.FQN(), r.instances.Len()); len(ids) > 0 {
		r.startInstances(ids...)
	}
}

func (m *Manager) runner(kind Kind, fqn string) *runner {
	r, _ := m.runners.Get(runnerKey(kind, fqn))
	return r
}

// Create stores a new connector and starts it.
func (m *Manager) Create(ctx context.Context, kind Kind, cfg Config) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	if err := cfg.normalize(kind); err != nil {
		return &BadRequestError{Msg: err.Error()}
	}
	now := nowMillis()
	rec := entry{Config: cfg, CreateTime: now, UpdateTime: now}
	if err := m.store.put(ctx, kind, rec, meta.NotExists); err != nil {
		return err
	}
	m.log.Info("connector created", "kind", kind, "connector", cfg.FQN(), "type", cfg.Type(), "parallelism", cfg.Parallelism)
	return m.apply(kind, rec)
}

// Update changes a connector's config (fields left out keep their
// values) and restarts its instances.
func (m *Manager) Update(ctx context.Context, kind Kind, upd Config) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, version, err := m.store.get(ctx, kind, upd.FQN())
	if err != nil {
		return err
	}
	if upd.SourceSubscriptionName != "" && upd.SourceSubscriptionName != rec.Config.SourceSubscriptionName {
		return &BadRequestError{Msg: fmt.Sprintf("subscription name cannot be changed (%q)", rec.Config.SourceSubscriptionName)}
	}
	if upd.Archive != "" && upd.Archive != rec.Config.Archive {
		return &BadRequestError{Msg: fmt.Sprintf("the connector type cannot be changed (%s): delete and create", rec.Config.Archive)}
	}
	cfg := rec.Config
	cfg.merge(&upd)
	if err := cfg.normalize(kind); err != nil {
		return &BadRequestError{Msg: err.Error()}
	}
	rec.Config = cfg
	rec.UpdateTime = nowMillis()
	if err := m.store.put(ctx, kind, rec, version); err != nil {
		if errors.Is(err, meta.ErrBadVersion) {
			return fmt.Errorf("%s %s changed during the update: %w", kind, cfg.FQN(), ErrConflict)
		}
		return err
	}
	m.log.Info("connector updated", "kind", kind, "connector", cfg.FQN())
	return m.apply(kind, rec)
}

// Delete stops a connector and removes its record, checkpoints and (for a
// sink with cleanupSubscription, the default) its subscription.
func (m *Manager) Delete(ctx context.Context, kind Kind, fqn string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, _, err := m.store.get(ctx, kind, fqn)
	if err != nil {
		return err
	}
	if r, ok := m.runners.Remove(runnerKey(kind, fqn)); ok {
		r.stopInstances(kind == KindSink && rec.Config.cleanupSubscription())
	}
	if err := m.store.delete(ctx, kind, fqn); err != nil {
		return err
	}
	m.metrics.forget(kind, &rec.Config)
	m.log.Info("connector deleted", "kind", kind, "connector", fqn)
	return nil
}

// Get returns a connector's config: secrets appear as their references.
func (m *Manager) Get(ctx context.Context, kind Kind, fqn string) (Config, error) {
	rec, _, err := m.store.get(ctx, kind, fqn)
	return rec.Config, err
}

// List returns the names of a namespace's connectors of kind.
func (m *Manager) List(ctx context.Context, kind Kind, ns naming.Namespace) ([]string, error) {
	recs, err := m.store.list(ctx, kind, ns.Tenant+"/"+ns.Name+"/")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(recs))
	for _, r := range recs {
		names = append(names, r.Config.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Status reports every instance (instance < 0) or one.
func (m *Manager) Status(ctx context.Context, kind Kind, fqn string, only int) (Status, error) {
	rec, _, err := m.store.get(ctx, kind, fqn)
	if err != nil {
		return Status{}, err
	}
	n := rec.Config.Parallelism
	if only >= n {
		return Status{}, &NotFoundError{Msg: fmt.Sprintf("%s %s has no instance %d (parallelism %d)", kind, fqn, only, n)}
	}
	st := Status{NumInstances: n, Instances: []InstanceStatus{}}
	r := m.runner(kind, fqn)
	var remote map[int]InstanceStatusData
	for id := range n {
		if only >= 0 && id != only {
			continue
		}
		is := InstanceStatus{InstanceID: id}
		var inst *instance
		if r != nil {
			inst = r.instanceAt(id)
		}
		if inst == nil && remote == nil && !m.place.Local() {
			if remote, err = m.remote(ctx, kind, fqn); err != nil {
				return Status{}, err
			}
		}
		if inst != nil {
			is.Status = inst.status(kind, m.cfg.WorkerID)
		} else if d, ok := remote[id]; ok {
			is.Status = d
		} else {
			zero := int64(0)
			is.Status = InstanceStatusData{WorkerID: m.cfg.WorkerID, LatestSystemExceptions: []ExceptionEntry{}}
			if rec.Stopped {
				is.Status.Error = "stopped"
			} else if !m.place.Local() {
				is.Status.WorkerID, is.Status.Error = "", notAssigned
			}
			if kind == KindSource {
				is.Status.NumReceivedFromSource, is.Status.NumWritten = &zero, &zero
			} else {
				is.Status.NumReadFromPulsar, is.Status.NumWrittenToSink = &zero, &zero
			}
		}
		if is.Status.Running {
			st.NumRunning++
		}
		st.Instances = append(st.Instances, is)
	}
	return st, nil
}

// SetRunning starts (run) or stops one instance (instance >= 0) or all;
// stopping or starting all is remembered across restarts.
func (m *Manager) SetRunning(ctx context.Context, kind Kind, fqn string, instance int, run bool) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, version, err := m.store.get(ctx, kind, fqn)
	if err != nil {
		return err
	}
	if instance >= rec.Config.Parallelism {
		return &NotFoundError{Msg: fmt.Sprintf("%s %s has no instance %d (parallelism %d)", kind, fqn, instance, rec.Config.Parallelism)}
	}
	if err := m.elsewhere(ctx, kind, fqn, instance); err != nil {
		return err
	}
	if instance < 0 && rec.Stopped != !run {
		rec.Stopped = !run
		if err := m.store.put(ctx, kind, rec, version); err != nil {
			return err
		}
	}
	r := m.runner(kind, fqn)
	if r == nil {
		if !run {
			return nil
		}
		return m.apply(kind, rec)
	}
	switch {
	case !run:
		r.stopInstances(false, supervise.IDs(instance)...)
	case instance >= 0:
		r.startInstances(instance)
	default:
		m.startPlaced(r)
	}
	return nil
}

// Restart restarts one instance or all.
func (m *Manager) Restart(ctx context.Context, kind Kind, fqn string, instance int) error {
	if instance < 0 && !m.place.Local() {
		return m.restartEverywhere(ctx, kind, fqn)
	}
	if err := m.SetRunning(ctx, kind, fqn, instance, false); err != nil {
		return err
	}
	return m.SetRunning(ctx, kind, fqn, instance, true)
}

// Builtins lists the built-in types of kind.
func (m *Manager) Builtins(kind Kind) []ConnectorDefinition { return Builtins(kind) }
