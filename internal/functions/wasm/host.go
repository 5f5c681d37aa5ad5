package wasm

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/messagebus/messagebus/pkg/function/abi"
	"github.com/tetratelabs/wazero/api"
)

// Host functions validate every pointer range against the caller's memory;
// a bad one aborts the call (the instance is restarted) instead of reading
// or writing anything. Errors of the state store are returned to the module
// as abi.ErrCode with the reason in the scratch buffer.

const i32, i64 = api.ValueTypeI32, api.ValueTypeI64

// The negative results of abi, as the stack holds them.
var (
	errCode64  = func() uint64 { v := int64(abi.ErrCode); return uint64(v) }()
	notFound64 = func() uint64 { v := int64(abi.NotFound); return uint64(v) }()
	errCode32  = func() uint64 { v := int32(abi.ErrCode); return uint64(uint32(v)) }()
)

// maxStateKey and maxStateValue bound what a module may store per key.
const (
	maxStateKey   = 4 << 10
	maxStateValue = 4 << 20
)

func (r *Runtime) instantiateHost(ctx context.Context) error {
	b := r.rt.NewHostModuleBuilder(abi.HostModule)
	fn := func(name string, f api.GoModuleFunc, params, results []api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).Export(name)
	}
	fn(abi.FnScratchRead, hostScratchRead, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.FnEmit, hostEmit, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.FnFail, hostFail, []api.ValueType{i32, i32}, nil)
	fn(abi.FnLog, hostLog, []api.ValueType{i32, i32, i32}, nil)
	fn(abi.FnResult, hostResult, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.FnUserConfig, hostUserConfig, nil, []api.ValueType{i32})
	fn(abi.FnStateGet, hostStateGet, []api.ValueType{i32, i32}, []api.ValueType{i64})
	fn(abi.FnStatePut, hostStatePut, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32})
	fn(abi.FnStateDelete, hostStateDelete, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.FnStateIncr, hostStateIncr, []api.ValueType{i32, i32, i64, i32}, []api.ValueType{i32})
	_, err := b.Instantiate(ctx)
	return err
}

// abort ends the current call: wazero turns the panic into the error Call
// returns, and Instance.Call restarts the instance.
func (in *Instance) abort(format string, a ...any) {
	in.hostErr = fmt.Errorf(format, a...)
	panic(in.hostErr)
}

func instanceOf(ctx context.Context) *Instance { return ctx.Value(instanceKey{}).(*Instance) }

// read returns a view of the caller's memory [ptr, ptr+n), or aborts.
func (in *Instance) read(m api.Module, what string, ptr, n uint32) []byte {
	mem := m.Memory()
	if mem == nil {
		in.abort("host call with a pointer from a module without memory: %s", what)
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		in.abort("host call with a bad pointer: %s [%d, +%d) is outside the module's memory (%d bytes)", what, ptr, n, mem.Size())
	}
	return b
}

func (in *Instance) setErr(err error) {
	s := err.Error()
	if len(s) > 4096 {
		s = s[:4096]
	}
	in.scratch = []byte(s)
}

func hostScratchRead(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	n = min(n, uint32(len(in.scratch)))
	if mem := m.Memory(); mem == nil || !mem.Write(ptr, in.scratch[:n]) {
		in.abort("host call with a bad pointer: scratch_read [%d, +%d) is outside the module's memory", ptr, n)
	}
	stack[0] = uint64(n)
}

func hostEmit(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	rec := in.read(m, "emit", uint32(stack[0]), uint32(stack[1]))
	if len(in.outputs) >= MaxOutputs || in.outBytes+len(rec) > MaxOutputBytes {
		in.abort("the module emitted more than %d messages or %d bytes in one call", MaxOutputs, MaxOutputBytes)
	}
	o, err := abi.DecodeOutput(rec)
	if err != nil {
		in.abort("emit: malformed output record: %v", err)
	}
	in.outBytes += len(rec)
	in.outputs = append(in.outputs, o)
	stack[0] = 0
}

func hostFail(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	b := in.read(m, "fail", uint32(stack[0]), uint32(stack[1]))
	in.failMsg = string(b[:min(len(b), 4096)])
}

func hostLog(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	b := in.read(m, "log", uint32(stack[1]), uint32(stack[2]))
	in.env.Log.Log(ctx, slog.Level(int32(stack[0])), string(b[:min(len(b), maxLogLine)]))
}

func hostUserConfig(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	in.scratch = in.env.UserConfig
	stack[0] = uint64(len(in.scratch))
}

func (in *Instance) stateKey(m api.Module, ptr, n uint64) (string, bool) {
	if uint32(n) > maxStateKey {
		in.setErr(fmt.Errorf("state key of %d bytes: at most %d", uint32(n), maxStateKey))
		return "", false
	}
	k := string(in.read(m, "state key", uint32(ptr), uint32(n)))
	if in.env.State == nil {
		in.setErr(fmt.Errorf("this function has no state store"))
		return "", false
	}
	return k, true
}

func hostStateGet(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	k, ok := in.stateKey(m, stack[0], stack[1])
	if !ok {
		stack[0] = errCode64
		return
	}
	v, found, err := in.env.State.Get(ctx, k)
	switch {
	case err != nil:
		in.setErr(err)
		stack[0] = errCode64
	case !found:
		stack[0] = notFound64
	default:
		in.scratch = v
		stack[0] = uint64(len(v))
	}
}

func hostStatePut(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	k, ok := in.stateKey(m, stack[0], stack[1])
	if !ok {
		stack[0] = errCode32
		return
	}
	if uint32(stack[3]) > maxStateValue {
		in.setErr(fmt.Errorf("state value of %d bytes: at most %d", uint32(stack[3]), maxStateValue))
		stack[0] = errCode32
		return
	}
	v := append([]byte(nil), in.read(m, "state value", uint32(stack[2]), uint32(stack[3]))...)
	stack[0] = in.result(in.env.State.Put(ctx, k, v))
}

func hostStateDelete(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	k, ok := in.stateKey(m, stack[0], stack[1])
	if !ok {
		stack[0] = errCode32
		return
	}
	stack[0] = in.result(in.env.State.Delete(ctx, k))
}

func hostStateIncr(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	out := uint32(stack[3])
	// Check the result pointer first, so that a bad one changes nothing.
	in.read(m, "state_incr result", out, 8)
	k, ok := in.stateKey(m, stack[0], stack[1])
	if !ok {
		stack[0] = errCode32
		return
	}
	v, err := in.env.State.Incr(ctx, k, int64(stack[2]))
	if err != nil {
		stack[0] = in.result(err)
		return
	}
	m.Memory().WriteUint64Le(out, uint64(v))
	stack[0] = 0
}

func (in *Instance) result(err error) uint64 {
	if err != nil {
		in.setErr(err)
		return errCode32
	}
	return 0
}

// EncodeCounter is the stored form of a counter: 8 bytes little-endian.
func EncodeCounter(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// DecodeCounter reads a counter; a value that is not 8 bytes is an error.
func DecodeCounter(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("state value of %d bytes is not a counter (8 bytes)", len(b))
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}
