package functions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/prometheus/client_golang/prometheus"
)

// ManagerConfig configures the worker.
type ManagerConfig struct {
	Meta meta.Store
	// BrokerURL is the node's own pulsar:// URL; AuthToken the worker's
	// token when authentication is on.
	BrokerURL string
	AuthToken string
	// MaxMemory and CallTimeout are the sandbox limits of every instance
	// (a function's resources.ram and timeoutMs may lower them).
	MaxMemory   int64
	CallTimeout time.Duration
	// BatchSize is the most messages an instance passes to one call of a
	// WebAssembly function (default DefaultBatchSize): what its consumer
	// has received, without waiting for more.
	BatchSize int
	// DedupEnabled reports whether a namespace deduplicates producers
	// (EFFECTIVELY_ONCE needs it on its output).
	DedupEnabled func(ctx context.Context, ns naming.Namespace) (bool, error)
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
	// WorkerID names this node in status answers.
	WorkerID string
	// WebURL is the node's admin API (given to process functions).
	WebURL string
	// WorkDir holds process functions' executables and instance
	// directories (default: a directory under os.TempDir()).
	WorkDir string
	// ProcessDisabled, when not empty, is why process functions are
	// refused on this node.
	ProcessDisabled string
	// ProcessAuthToken is the token process functions get (MB_AUTH_TOKEN
	// and the client config) when authentication is on.
	ProcessAuthToken string
	// InProcess, when set, is the broker this worker runs in: instances
	// whose inputs it serves consume and publish in process (inprocess.go).
	InProcess InProcess
	// Placement decides which instances this node runs (nil: all of them,
	// supervise.Local). In cluster mode it is package cluster's.
	Placement supervise.Placement
}

// DefaultBatchSize is ManagerConfig.BatchSize's default.
const DefaultBatchSize = 100

func (c *ManagerConfig) batchSize() int {
	if c.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return c.BatchSize
}

// Manager runs the functions stored in the metadata store and serves the
// admin API's functions calls.
type Manager struct {
	cfg     ManagerConfig
	log     *slog.Logger
	store   store
	client  pulsar.Client
	metrics *metrics
	runners supervise.Registry[*runner]
	place   supervise.Placement

	// applyMu serializes the changes of runners: the API's calls and
	// Reconcile (cluster mode).
	applyMu sync.Mutex
	// failed remembers records whose runner could not be made (by
	// fqfn: their version), so that Reconcile does not retry each pass.
	failed    map[string][2]int64
	stopWatch context.CancelFunc
}

// BadRequestError is a problem with what the caller sent (400).
type BadRequestError = supervise.BadRequestError

func badRequest(format string, a ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, a...)}
}

// NewManager makes the worker; Start runs the stored functions.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxMemory <= 0 {
		cfg.MaxMemory = wasm.DefaultMaxMemory
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = wasm.DefaultCallTimeout
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "mb-functions")
	}
	client, err := supervise.NewClient(cfg.BrokerURL, cfg.AuthToken, cfg.Logger.With("component", "functions-client"))
	if err != nil {
		return nil, fmt.Errorf("functions %w", err)
	}
	if cfg.Placement == nil {
		cfg.Placement = supervise.Local{}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: store{meta: cfg.Meta}, client: client,
		metrics: newMetrics(cfg.Registerer), place: cfg.Placement, failed: map[string][2]int64{}, stopWatch: func() {}}
	m.place.Attach(m)
	if !m.place.Local() {
		// Work directories left by a killed node: the placement's passes
		// write the executables out again.
		if err := os.RemoveAll(cfg.WorkDir); err != nil {
			m.log.Warn("stale function work directory not removed", "dir", cfg.WorkDir, "error", err)
		}
		m.watch() // changes made through other brokers wake the placement
	}
	return m, nil
}

// Start runs every stored function that is not stopped. A function whose
// code cannot be loaded is logged and left out; the others run.
func (m *Manager) Start(ctx context.Context) error {
	if !m.place.Local() {
		return nil // the placement's passes run the functions (Reconcile)
	}
	// Work directories left by a killed node: the executables are written
	// out again from the metadata store.
	if err := os.RemoveAll(m.cfg.WorkDir); err != nil {
		m.log.Warn("stale function work directory not removed", "dir", m.cfg.WorkDir, "error", err)
	}
	recs, err := m.store.list(ctx, "")
	if err != nil {
		return fmt.Errorf("list functions: %w", err)
	}
	for _, rec := range recs {
		if err := m.apply(ctx, rec); err != nil {
			m.log.Error("function not started", "function", rec.Config.FQFN(), "error", err)
		}
	}
	return nil
}

// Close stops every function (their subscriptions stay).
func (m *Manager) Close() {
	m.stopWatch()
	for _, r := range m.runners.Close() {
		r.close(false)
	}
	m.client.Close()
}

// apply makes the running state match rec: it replaces the function's
// runner (with new code and config) and starts it unless stopped.
func (m *Manager) apply(ctx context.Context, rec Record) error {
	fqfn := rec.Config.FQFN()
	code, err := m.store.code(ctx, fqfn, rec.Code)
	if err != nil {
		return err
	}
	r, err := newRunner(ctx, m, rec, code)
	if err != nil {
		return err
	}
	old, replaced, err := m.runners.Put(fqfn, r)
	if err != nil {
		r.close(false)
		return errors.New("functions worker is closed")
	}
	if replaced {
		old.close(false)
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
	if ids := supervise.MineIDs(m.place, KindFunction, r.fqfn, r.instances.Len()); len(ids) > 0 {
		r.startInstances(ids...)
	}
}

func (m *Manager) runner(fqfn string) *runner {
	r, _ := m.runners.Get(fqfn)
	return r
}

// check validates cfg and, for EFFECTIVELY_ONCE, its output namespace.
func (m *Manager) check(ctx context.Context, cfg *Config) error {
	if err := cfg.normalize(); err != nil {
		return &BadRequestError{Msg: err.Error()}
	}
	if cfg.isProcess() && m.cfg.ProcessDisabled != "" {
		return badRequest("runtime PROCESS: %s", m.cfg.ProcessDisabled)
	}
	if cfg.ProcessingGuarantees == EffectivelyOnce && cfg.Output != "" && m.cfg.DedupEnabled != nil {
		t, _ := naming.ParseTopic(cfg.Output)
		on, err := m.cfg.DedupEnabled(ctx, t.Namespace)
		if err != nil {
			return err
		}
		if !on {
			return badRequest("EFFECTIVELY_ONCE needs deduplication on the output's namespace %s: enable it (pulsar-admin namespaces set-deduplication %s --enable)", t.Namespace, t.Namespace)
		}
	}
	return nil
}

// Create stores a new function and starts it.
func (m *Manager) Create(ctx context.Context, cfg Config, code []byte) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	if err := m.check(ctx, &cfg); err != nil {
		return err
	}
	if len(code) == 0 {
		return badRequest("function package is missing: upload the module as the multipart part \"data\"")
	}
	if len(code) > MaxModuleSize {
		return badRequest("function module of %d bytes: at most %d", len(code), MaxModuleSize)
	}
	fqfn := cfg.FQFN()
	if _, _, err := m.store.get(ctx, fqfn); err == nil {
		return ErrExists
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := m.validateModule(ctx, &cfg, code); err != nil {
		return err
	}
	now := nowMillis()
	rec := Record{Config: cfg, Version: now, CreateTime: now, UpdateTime: now}
	ref, err := m.store.putCode(ctx, fqfn, rec.Version, code)
	if err != nil {
		return err
	}
	rec.Code = ref
	if err := m.store.put(ctx, rec, meta.NotExists); err != nil {
		m.store.deleteCode(ctx, fqfn, -1)
		return err
	}
	m.log.Info("function created", "function", fqfn, "inputs", cfg.Inputs, "pattern", cfg.TopicsPattern, "output", cfg.Output,
		"guarantee", cfg.ProcessingGuarantees, "parallelism", cfg.Parallelism, "module_bytes", len(code))
	return m.apply(ctx, rec)
}

// validateModule compiles code once to refuse a bad module before storing
// it (an executable is only checked not to be a WebAssembly module).
func (m *Manager) validateModule(ctx context.Context, cfg *Config, code []byte) error {
	if cfg.isProcess() {
		if bytes.HasPrefix(code, []byte("\x00asm")) {
			return badRequest("runtime PROCESS needs an executable, not a WebAssembly module (leave runtime out for WASM)")
		}
		return nil
	}
	rt, err := wasm.NewRuntime(ctx, wasm.Config{MaxMemory: m.cfg.MaxMemory, CallTimeout: m.cfg.CallTimeout})
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	if _, err := rt.Compile(ctx, code); err != nil {
		return &BadRequestError{Msg: err.Error()}
	}
	return nil
}

// Update changes a function's config (fields left out keep their values)
// and, when code is not nil, its module; the instances are restarted.
func (m *Manager) Update(ctx context.Context, upd Config, code []byte) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	fqfn := upd.FQFN()
	rec, version, err := m.store.get(ctx, fqfn)
	if err != nil {
		return err
	}
	if upd.SubName != "" && upd.SubName != rec.Config.SubName {
		return badRequest("subscription name cannot be changed (%q)", rec.Config.SubName)
	}
	cfg := rec.Config
	cfg.merge(&upd)
	if code == nil && cfg.isProcess() != rec.Config.isProcess() {
		return badRequest("changing the runtime needs the new package (data)")
	}
	if err := m.check(ctx, &cfg); err != nil {
		return err
	}
	rec.Config = cfg
	rec.UpdateTime = nowMillis()
	if code != nil {
		if len(code) > MaxModuleSize {
			return badRequest("function module of %d bytes: at most %d", len(code), MaxModuleSize)
		}
		if err := m.validateModule(ctx, &cfg, code); err != nil {
			return err
		}
		rec.Version = max(rec.Version+1, rec.UpdateTime)
		if rec.Code, err = m.store.putCode(ctx, fqfn, rec.Version, code); err != nil {
			return err
		}
	}
	if err := m.store.put(ctx, rec, version); err != nil {
		if errors.Is(err, meta.ErrBadVersion) {
			return fmt.Errorf("function %s changed during the update: %w", fqfn, ErrConflict)
		}
		return err
	}
	if err := m.store.deleteCode(ctx, fqfn, rec.Code.Generation); err != nil {
		m.log.Warn("old function code not removed", "function", fqfn, "error", err)
	}
	m.log.Info("function updated", "function", fqfn, "new_code", code != nil)
	return m.apply(ctx, rec)
}

// ErrConflict is a concurrent change (409).
var ErrConflict = supervise.ErrConflict

// Delete stops a function, removes its subscription (unless
// cleanupSubscription is false), its code and its state.
func (m *Manager) Delete(ctx context.Context, fqfn string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, _, err := m.store.get(ctx, fqfn)
	if err != nil {
		return err
	}
	if r, ok := m.runners.Remove(fqfn); ok {
		r.close(rec.Config.cleanupSubscription())
	}
	if err := m.store.delete(ctx, fqfn); err != nil {
		return err
	}
	if err := m.store.deleteCode(ctx, fqfn, -1); err != nil {
		m.log.Warn("function code not removed", "function", fqfn, "error", err)
	}
	if err := newState(m.cfg.Meta, fqfn).deleteAll(ctx); err != nil {
		m.log.Warn("function state not removed", "function", fqfn, "error", err)
	}
	m.metrics.forget(&rec.Config)
	m.log.Info("function deleted", "function", fqfn)
	return nil
}

// Get returns a function's config.
func (m *Manager) Get(ctx context.Context, fqfn string) (Config, error) {
	rec, _, err := m.store.get(ctx, fqfn)
	return rec.Config, err
}

// List returns the names of a namespace's functions.
func (m *Manager) List(ctx context.Context, ns naming.Namespace) ([]string, error) {
	recs, err := m.store.list(ctx, ns.Tenant+"/"+ns.Name+"/")
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

// SetRunning starts (run) or stops one instance (instance >= 0) or all;
// stopping or starting all is remembered across restarts.
func (m *Manager) SetRunning(ctx context.Context, fqfn string, instance int, run bool) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	defer m.place.Changed()
	rec, version, err := m.store.get(ctx, fqfn)
	if err != nil {
		return err
	}
	if instance >= rec.Config.Parallelism {
		return &NotFoundError{Msg: fmt.Sprintf("function %s has no instance %d (parallelism %d)", fqfn, instance, rec.Config.Parallelism)}
	}
	if err := m.elsewhere(ctx, fqfn, instance); err != nil {
		return err
	}
	if instance < 0 && rec.Stopped == !run {
		// Nothing to remember; still make the instances match.
	} else if instance < 0 {
		rec.Stopped = !run
		if err := m.store.put(ctx, rec, version); err != nil {
			return err
		}
	}
	r := m.runner(fqfn)
	if r == nil {
		if !run {
			return nil
		}
		return m.apply(ctx, rec)
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
func (m *Manager) Restart(ctx context.Context, fqfn string, instance int) error {
	if instance < 0 && !m.place.Local() {
		return m.restartEverywhere(ctx, fqfn)
	}
	if err := m.SetRunning(ctx, fqfn, instance, false); err != nil {
		return err
	}
	return m.SetRunning(ctx, fqfn, instance, true)
}

// NotFoundError is a missing instance or key (404).
type NotFoundError = supervise.NotFoundError

// Trigger runs the function once on value (as if it arrived on topic, ""
// for its first input), publishes the outputs and returns the first one.
func (m *Manager) Trigger(ctx context.Context, fqfn, topic string, value []byte) ([]byte, error) {
	rec, _, err := m.store.get(ctx, fqfn)
	if err != nil {
		return nil, err
	}
	r := m.runner(fqfn)
	if r == nil && !m.place.Local() {
		// Cluster mode loads a function on a broker when it first needs it.
		if r, err = m.load(ctx, rec); err != nil {
			return nil, err
		}
	}
	if r == nil {
		return nil, fmt.Errorf("function %s is not loaded on this worker (see the log)", fqfn)
	}
	return r.triggerCall(ctx, topic, value)
}

// State reads one state key.
func (m *Manager) State(ctx context.Context, fqfn, key string) (StateValue, error) {
	if _, _, err := m.store.get(ctx, fqfn); err != nil {
		return StateValue{}, err
	}
	v, version, err := newState(m.cfg.Meta, fqfn).getVersion(ctx, key)
	if errors.Is(err, meta.ErrNotFound) {
		return StateValue{}, &NotFoundError{Msg: fmt.Sprintf("key %q does not exist in the state of %s", key, fqfn)}
	}
	if err != nil {
		return StateValue{}, err
	}
	sv := StateValue{Key: key, Version: version}
	switch {
	case len(v) == 8 && !isText(v):
		n, _ := wasm.DecodeCounter(v)
		sv.NumberValue = &n
	case isText(v):
		sv.StringValue = string(v)
	default:
		sv.ByteValue = v
	}
	return sv, nil
}

// PutState writes one state key: NumberValue as a counter, else
// StringValue or ByteValue.
func (m *Manager) PutState(ctx context.Context, fqfn string, sv StateValue) error {
	if _, _, err := m.store.get(ctx, fqfn); err != nil {
		return err
	}
	if sv.Key == "" {
		return badRequest("state key is empty")
	}
	v := []byte(sv.StringValue)
	switch {
	case sv.NumberValue != nil:
		v = wasm.EncodeCounter(*sv.NumberValue)
	case sv.ByteValue != nil:
		v = sv.ByteValue
	}
	// Written at once (not through a runner's overlay): the endpoint's
	// caller reads it back right away.
	st := newState(m.cfg.Meta, fqfn)
	if err := st.Put(ctx, sv.Key, v); err != nil {
		return err
	}
	return st.flush(ctx)
}

// isText reports whether b is printable UTF-8 (shown as stringValue).
func isText(b []byte) bool {
	return !strings.ContainsFunc(string(b), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0xfffd })
}
