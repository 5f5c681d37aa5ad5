package wasm

import (
	"context"

	"github.com/messagebus/messagebus/pkg/function/abi"
	"github.com/tetratelabs/wazero/api"
)

// Batch calls: a version-2 module takes many messages in one call (entering
// a module costs several microseconds; the SDK loops inside) and reports
// each message's outcome with the result host function as it finishes it,
// so that a crash or timeout in the middle loses nothing of the messages
// before it.

// Batch reports whether the module takes batch calls (ABI version 2);
// CallBatch works either way.
func (m *Module) Batch() bool { return m.batch }

// CallBatch runs the handler on msgs in order and returns the results of a
// prefix of them (valid until the next call). When err is nil and the
// prefix is shorter than msgs, the module stopped after a failed message
// because stopOnFail asked it to; when err is not nil, the message just
// after the prefix crashed or timed out the instance (ErrCrashed,
// ErrTimeout), which was torn down, and the rest was not run.
func (in *Instance) CallBatch(msgs []abi.Message, stopOnFail bool) ([]abi.Result, error) {
	in.results = in.results[:0]
	if !in.m.batch {
		return in.callEach(msgs, stopOnFail)
	}
	g, err := in.ready()
	if err != nil {
		return nil, err
	}
	in.input = in.input[:0]
	for k := range msgs {
		in.input = abi.AppendBatch(in.input, &msgs[k])
	}
	in.reset()
	in.batchCount, in.stopOnFail = len(msgs), stopOnFail
	g.stack[0], g.stack[1] = uint64(len(msgs)), uint64(len(in.input))
	if err := in.enter(g, g.batch); err != nil {
		return in.results, err
	}
	if uint32(g.stack[0]) != abi.ResultOK {
		// The module could not read the batch: every message left fails.
		ue := in.userError(g).(*UserError)
		for len(in.results) < len(msgs) {
			in.results = append(in.results, abi.Result{Status: abi.ResultFailed, Error: ue.Msg})
		}
	}
	return in.results, nil
}

// callEach is CallBatch for a version-1 module: one call per message.
func (in *Instance) callEach(msgs []abi.Message, stopOnFail bool) ([]abi.Result, error) {
	var results []abi.Result
	for k := range msgs {
		outs, err := in.Call(&msgs[k])
		var r abi.Result
		switch ue := err.(type) {
		case nil:
			r.Outputs = append([]abi.Output(nil), outs...)
		case *UserError:
			r.Status, r.Error = abi.ResultFailed, ue.Msg
		default:
			return results, err
		}
		results = append(results, r)
		if r.Status != abi.ResultOK && stopOnFail {
			break
		}
	}
	return results, nil
}

// hostResult takes the outcome of the batch's next message.
func hostResult(ctx context.Context, m api.Module, stack []uint64) {
	in := instanceOf(ctx)
	rec := in.read(m, "result", uint32(stack[0]), uint32(stack[1]))
	if len(in.results) >= in.batchCount {
		in.abort("result called more often than the batch has messages (%d)", in.batchCount)
	}
	if len(rec) > MaxOutputBytes+1<<20 {
		in.abort("the module emitted more than %d bytes for one message", MaxOutputBytes)
	}
	// Reuse the slot's output array from an earlier batch.
	var r abi.Result
	if len(in.results) < cap(in.results) {
		r = in.results[:len(in.results)+1][len(in.results)]
	}
	if err := abi.DecodeResult(rec, &r, MaxOutputs); err != nil {
		in.abort("result: malformed record: %v", err)
	}
	in.results = append(in.results, r)
	stack[0] = 0
	if r.Status != abi.ResultOK && in.stopOnFail {
		stack[0] = 1
	}
}
