package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/messagebus/messagebus/pkg/function/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// State is a function's durable key-value state, as the worker keeps it.
type State interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64) (int64, error)
}

// Env is what an instance's host calls reach besides the message.
type Env struct {
	// State backs the state_* host functions; nil makes them fail.
	State State
	// Log receives the module's log calls and its stdout and stderr lines.
	Log *slog.Logger
	// UserConfig is the JSON the module reads with user_config.
	UserConfig []byte
}

// Errors of Call. A UserError leaves the instance as it was; the others
// mean the instance was torn down and is re-instantiated on the next call.
var (
	ErrTimeout = errors.New("function call exceeded its time budget")
	ErrCrashed = errors.New("function instance crashed")
)

// UserError is a failure the function reported itself (its handler
// returned an error or panicked).
type UserError struct{ Msg string }

func (e *UserError) Error() string { return "function failed: " + e.Msg }

// Instance is one sandboxed copy of a module. It is not safe for concurrent
// calls: the worker gives each instance its own goroutine.
type Instance struct {
	m   *Module
	env Env
	gen *generation // nil until the first call, or after a crash

	// Restarts counts the re-instantiations after a crash or timeout.
	Restarts atomic.Int64

	// The current call; host functions reach it through the context.
	scratch  []byte // what scratch_read copies from
	input    []byte // the encoded input, reused
	outputs  []abi.Output
	outBytes int
	failMsg  string
	hostErr  error // a host function's reason to abort the call
	// The current batch call (batch.go).
	results    []abi.Result
	batchCount int
	stopOnFail bool
}

// generation is one instantiation of the module with its own context, so
// that the watchdog can only cancel the generation it found overdue.
type generation struct {
	ctx    context.Context
	cancel context.CancelFunc
	mod    api.Module
	handle api.Function
	batch  api.Function // nil for a version-1 module
	stack  []uint64
	// started is when the running call began (watchdog clock), 0 between
	// calls; the runtime's watchdog cancels ctx when it is overdue.
	started  atomic.Int64
	timedOut atomic.Bool
}

type instanceKey struct{}

// NewInstance prepares an instance of m; the module is instantiated on the
// first call (Start does it now).
func (m *Module) NewInstance(env Env) *Instance {
	if env.Log == nil {
		env.Log = slog.Default()
	}
	return &Instance{m: m, env: env}
}

// Start instantiates the module if it is not running, running its
// initialisation under the call budget.
func (in *Instance) Start() error {
	if in.gen != nil && in.gen.ctx.Err() == nil {
		return nil
	}
	in.stop()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), instanceKey{}, in))
	g := &generation{ctx: ctx, cancel: cancel, stack: make([]uint64, 2)}
	in.m.r.watch(g)
	out := &lineWriter{log: in.env.Log}
	cfg := wazero.NewModuleConfig().WithName("").
		WithStdout(out).WithStderr(out).
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	if in.m.reactor {
		cfg = cfg.WithStartFunctions("_initialize")
	} else {
		cfg = cfg.WithStartFunctions()
	}
	g.arm()
	mod, err := in.m.r.rt.InstantiateModule(ctx, in.m.compiled, cfg)
	g.disarm()
	if err != nil {
		in.m.r.unwatch(g)
		cancel()
		if g.timedOut.Load() {
			return fmt.Errorf("%w: instantiating the module took longer than %v", ErrTimeout, in.m.r.cfg.CallTimeout)
		}
		return fmt.Errorf("%w: instantiate: %v", ErrCrashed, err)
	}
	g.mod = mod
	g.handle = mod.ExportedFunction(abi.ExportHandle)
	if in.m.batch {
		g.batch = mod.ExportedFunction(abi.ExportHandleBatch)
	}
	if v := mod.ExportedFunction(abi.ExportVersion); v != nil {
		res, err := v.Call(ctx)
		if err != nil || len(res) != 1 || uint32(res[0]) < abi.MinVersion || uint32(res[0]) > abi.Version {
			mod.Close(context.Background())
			in.m.r.unwatch(g)
			cancel()
			return fmt.Errorf("%w: module ABI version %v (err %v), want %d to %d", ErrBadModule, res, err, abi.MinVersion, abi.Version)
		}
	}
	in.gen = g
	return nil
}

func (g *generation) arm()    { g.started.Store(watchClock()) }
func (g *generation) disarm() { g.started.Store(0) }

// stop tears the current generation down.
func (in *Instance) stop() {
	g := in.gen
	if g == nil {
		return
	}
	in.gen = nil
	in.m.r.unwatch(g)
	g.cancel()
	if g.mod != nil {
		g.mod.Close(context.Background())
	}
}

// Close releases the instance.
func (in *Instance) Close() { in.stop() }

// Call runs the module's handler on msg. The outputs are valid until the
// next call. After ErrTimeout or ErrCrashed the instance has been torn
// down; the next call instantiates it afresh.
func (in *Instance) Call(msg *abi.Message) ([]abi.Output, error) {
	g, err := in.ready()
	if err != nil {
		return nil, err
	}
	in.input = abi.AppendMessage(in.input[:0], msg)
	in.reset()
	g.stack[0] = uint64(len(in.input))
	if err := in.enter(g, g.handle); err != nil {
		return nil, err
	}
	if uint32(g.stack[0]) != abi.ResultOK {
		return nil, in.userError(g)
	}
	return in.outputs, nil
}

// ready returns the running generation, instantiating one if needed.
func (in *Instance) ready() (*generation, error) {
	if in.gen == nil || in.gen.ctx.Err() != nil {
		if in.gen != nil {
			in.stop() // a timer fired just after the last call returned
		}
		if err := in.Start(); err != nil {
			return nil, err
		}
	}
	return in.gen, nil
}

// reset clears the per-call fields; the input is in in.input.
func (in *Instance) reset() {
	in.scratch = in.input
	in.outputs = in.outputs[:0]
	in.outBytes = 0
	in.failMsg = ""
	in.hostErr = nil
}

// enter calls fn with g.stack under the time budget. An error means the
// instance crashed or timed out and was torn down.
func (in *Instance) enter(g *generation, fn api.Function) error {
	g.arm()
	err := fn.CallWithStack(g.ctx, g.stack)
	g.disarm()
	in.scratch = nil
	if err == nil && in.hostErr == nil {
		return nil
	}
	timedOut := g.timedOut.Load()
	in.stop()
	in.Restarts.Add(1)
	switch {
	case timedOut:
		return fmt.Errorf("%w (%v); instance restarted", ErrTimeout, in.m.r.cfg.CallTimeout)
	case in.hostErr != nil:
		return fmt.Errorf("%w: %v", ErrCrashed, in.hostErr)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w: module exited with code %d", ErrCrashed, exit.ExitCode())
	}
	return fmt.Errorf("%w: %v", ErrCrashed, err)
}

func (in *Instance) userError(g *generation) error {
	msg := in.failMsg
	if msg == "" {
		msg = fmt.Sprintf("handler returned %d", int32(g.stack[0]))
	}
	return &UserError{Msg: msg}
}

// lineWriter turns a module's stdout and stderr into log lines, each cut at
// 4 KiB so that a module cannot make the host buffer without end.
type lineWriter struct {
	mu   sync.Mutex
	log  *slog.Logger
	line []byte
}

const maxLogLine = 4 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(w.line); room > 0 {
			w.line = append(w.line, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		w.log.Info(string(w.line), "stream", "stdout")
		w.line = w.line[:0]
		p = p[i+1:]
	}
	return n, nil
}
