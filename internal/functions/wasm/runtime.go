package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/messagebus/messagebus/pkg/function/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults of Config.
const (
	DefaultMaxMemory   = 128 << 20
	DefaultCallTimeout = 5 * time.Second
	// MaxOutputs and MaxOutputBytes bound what one call may emit, so that a
	// module cannot make the host buffer without end.
	MaxOutputs     = abi.MaxOutputs
	MaxOutputBytes = abi.MaxOutputBytes
)

// Config sets the limits of every instance of a Runtime.
type Config struct {
	// MaxMemory caps each instance's linear memory in bytes (rounded down
	// to 64 KiB pages; default DefaultMaxMemory).
	MaxMemory int64
	// CallTimeout is the wall-clock budget of one call (default
	// DefaultCallTimeout).
	CallTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
}

// Runtime compiles modules and instantiates them. It is safe for concurrent
// use; close it after its instances.
type Runtime struct {
	cfg Config
	rt  wazero.Runtime

	mu        sync.Mutex
	gens      map[*generation]struct{} // instantiated generations (watchdog.go)
	stopWatch chan struct{}            // closes the watchdog; nil when none runs
}

// NewRuntime makes a runtime with the WASI and MessageBus host modules.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg.setDefaults()
	pages := uint32(cfg.MaxMemory >> 16)
	if pages == 0 {
		return nil, fmt.Errorf("function max memory %d is below one 64 KiB page", cfg.MaxMemory)
	}
	if pages > 65536 {
		pages = 65536
	}
	cache := sharedCache()
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true).
		WithCompilationCache(cache)
	r := &Runtime{cfg: cfg, rt: wazero.NewRuntimeWithConfig(ctx, rc), gens: map[*generation]struct{}{}}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := r.instantiateHost(ctx); err != nil { // host.go
		r.Close(ctx)
		return nil, fmt.Errorf("instantiate host functions: %w", err)
	}
	return r, nil
}

// Config returns the runtime's limits.
func (r *Runtime) Config() Config { return r.cfg }

// Close releases the runtime, its compiled modules and any instance left.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.stopWatch != nil {
		close(r.stopWatch)
		r.stopWatch = nil
	}
	r.mu.Unlock()
	return r.rt.Close(ctx)
}

// The compilation cache is shared by every runtime of the process: a module
// is compiled to machine code once, however many runtimes load it (tests
// make one per set of limits), and the cache lives as long as the process.
var (
	cacheOnce sync.Once
	cache     wazero.CompilationCache
)

func sharedCache() wazero.CompilationCache {
	cacheOnce.Do(func() { cache = wazero.NewCompilationCache() })
	return cache
}

// Module is a compiled, validated function module.
type Module struct {
	r        *Runtime
	compiled wazero.CompiledModule
	reactor  bool // exports _initialize (a WASI reactor)
	batch    bool // exports abi.ExportHandleBatch
}

// ErrBadModule wraps every reason a module cannot be used.
var ErrBadModule = errors.New("invalid function module")

// Compile validates code as a function module and compiles it.
func (r *Runtime) Compile(ctx context.Context, code []byte) (*Module, error) {
	cm, err := r.rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModule, err)
	}
	exports := cm.ExportedFunctions()
	fail := func(format string, a ...any) (*Module, error) {
		cm.Close(ctx)
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadModule}, a...)...)
	}
	h, ok := exports[abi.ExportHandle]
	if !ok {
		return fail("it does not export %s (Go: build with -buildmode=c-shared and call function.Handle in init)", abi.ExportHandle)
	}
	if !sameTypes(h.ParamTypes(), api.ValueTypeI32) || !sameTypes(h.ResultTypes(), api.ValueTypeI32) {
		return fail("%s must be (i32) -> i32", abi.ExportHandle)
	}
	hb, batch := exports[abi.ExportHandleBatch]
	if batch && (!sameTypes(hb.ParamTypes(), api.ValueTypeI32, api.ValueTypeI32) || !sameTypes(hb.ResultTypes(), api.ValueTypeI32)) {
		return fail("%s must be (i32, i32) -> i32", abi.ExportHandleBatch)
	}
	if v, ok := exports[abi.ExportVersion]; ok && (len(v.ParamTypes()) != 0 || !sameTypes(v.ResultTypes(), api.ValueTypeI32)) {
		return fail("%s must be () -> i32", abi.ExportVersion)
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		if mod != abi.HostModule && mod != wasi_snapshot_preview1.ModuleName {
			return fail("it imports %s.%s: only %q and %q are provided", mod, name, abi.HostModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	_, reactor := exports["_initialize"]
	return &Module{r: r, compiled: cm, reactor: reactor, batch: batch}, nil
}

// Close releases the compiled code; instances must be closed first.
func (m *Module) Close(ctx context.Context) error { return m.compiled.Close(ctx) }

func sameTypes(got []api.ValueType, want ...api.ValueType) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
