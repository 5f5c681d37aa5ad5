//go:build wasip1

package function

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/messagebus/messagebus/pkg/function/abi"
)

//go:wasmimport mb scratch_read
func hostScratchRead(ptr unsafe.Pointer, n int32) int32

//go:wasmimport mb emit
func hostEmit(ptr unsafe.Pointer, n int32) int32

//go:wasmimport mb fail
func hostFail(ptr unsafe.Pointer, n int32)

//go:wasmimport mb log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport mb result
func hostResult(ptr unsafe.Pointer, n int32) int32

//go:wasmimport mb user_config
func hostUserConfig() int32

//go:wasmimport mb state_get
func hostStateGet(kptr unsafe.Pointer, klen int32) int64

//go:wasmimport mb state_put
func hostStatePut(kptr unsafe.Pointer, klen int32, vptr unsafe.Pointer, vlen int32) int32

//go:wasmimport mb state_delete
func hostStateDelete(kptr unsafe.Pointer, klen int32) int32

//go:wasmimport mb state_incr
func hostStateIncr(kptr unsafe.Pointer, klen int32, delta int64, out unsafe.Pointer) int32

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// scratch is reused across calls: inputs are copied out of it by the decoder.
// input holds the current message (the decoded Message points into it);
// scratch takes every other read (state values, the user config), so
// that reading them never overwrites the message being handled.
var input, scratch []byte

func readInto(buf *[]byte, n int64) []byte {
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if n > 0 {
		hostScratchRead(bytesPtr(b), int32(n))
	}
	return b
}

func readScratch(n int64) []byte { return readInto(&scratch, n) }

func scratchError() error { return errors.New(string(readScratchAll())) }

func readScratchAll() []byte {
	// An error text is short; 4 KiB is what the host writes at most.
	b := make([]byte, 4096)
	n := hostScratchRead(bytesPtr(b), int32(len(b)))
	return b[:n]
}

//go:wasmexport mb_abi_version
func abiVersion() int32 { return abi.Version }

//go:wasmexport mb_handle
func handle(n int32) (res int32) {
	if handler == nil {
		failWith("function.Handle was not called in init()")
		return abi.ResultFailed
	}
	msg, ok := decodeInput(readInto(&input, int64(n)))
	if !ok {
		failWith("decode input: malformed record")
		return abi.ResultFailed
	}
	defer func() {
		if p := recover(); p != nil {
			failWith(fmt.Sprint("panic: ", p))
			res = abi.ResultFailed
		}
	}()
	if err := handler(theContext, msg); err != nil {
		failWith(err.Error())
		return abi.ResultFailed
	}
	return abi.ResultOK
}

// Batch calls (ABI version 2): the host passes many inputs at once and the
// SDK loops over them here, so that entering the module is paid once per
// batch. Outputs are collected in pending (each a u32 length and an
// output record) after room for the result's head, and sent with it: one
// host call per message.
var (
	inBatch  bool
	pending  = make([]byte, resultHeadSize, 4096)
	nPending int
	ack      int32
	resBuf   []byte
)

//go:wasmexport mb_handle_batch
func handleBatch(count, n int32) int32 {
	if handler == nil {
		failWith("function.Handle was not called in init()")
		return abi.ResultFailed
	}
	b := readInto(&input, int64(n))
	inBatch = true
	defer func() { inBatch = false }()
	for i := int32(0); i < count; {
		var ok bool
		if i, ok = runBatch(&b, i, count); !ok {
			return abi.ResultFailed
		}
	}
	return abi.ResultOK
}

// runBatch handles messages i.. of the batch in b and returns where it
// stopped. A panic ends it after reporting the message that panicked (one
// deferred recover per run rather than per message: a defer costs more
// than a microsecond in a wasm module); handleBatch then resumes with the
// next message. ok is false for a malformed batch.
func runBatch(b *[]byte, i, count int32) (next int32, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			next, ok = count, true
			if !report(abi.ResultFailed, fmt.Sprint("panic: ", p)) {
				next = i + 1
			}
		}
	}()
	for ; i < count; i++ {
		if len(*b) < 4 {
			failWith("decode input: malformed batch")
			return i, false
		}
		l := binary.LittleEndian.Uint32(*b)
		if uint64(l) > uint64(len(*b)-4) {
			failWith("decode input: malformed batch")
			return i, false
		}
		rec := (*b)[4 : 4+l]
		*b = (*b)[4+l:]
		pending, nPending, ack = pending[:resultHeadSize], 0, ackNone
		status, errText := abi.ResultOK, ""
		if msg, ok := decodeInput(rec); !ok {
			status, errText = abi.ResultFailed, "decode input: malformed record"
		} else if err := handler(theContext, msg); err != nil {
			status, errText = abi.ResultFailed, err.Error()
		}
		if report(status, errText) {
			return count, true
		}
	}
	return count, true
}

// report sends the current message's result; true means the host asked
// to stop the batch.
func report(status int, errText string) bool {
	if status == abi.ResultOK && len(pending) >= resultHeadSize {
		putResultHead(pending, ack, nPending)
		return hostResult(bytesPtr(pending), int32(len(pending))) != 0
	}
	// A failed message publishes nothing.
	resBuf = abi.AppendResultHead(resBuf[:0], int32(status), ack, errText, 0)
	return hostResult(bytesPtr(resBuf), int32(len(resBuf))) != 0
}

func setAck(a int32) error {
	ack = a
	return nil
}

// props is the input's property map, cleared and refilled per message.
var props = map[string]string{}

// decodeInput reads an abi.Message record without allocating: strings and
// the payload point into b, which the next message overwrites (hence
// Message's rule that a handler copies what it keeps). Allocation is what
// costs most in a Go module: its garbage collector only runs inside calls.
// The field readers are small enough for the compiler to inline: a call
// costs a Go wasm module far more than the read itself.
func decodeInput(b []byte) (Message, bool) {
	var m Message
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	var ev, pt int64
	m.Topic, b, ok1 = readStr(b)
	m.Key, b, ok2 = readStr(b)
	ev, b, ok3 = readI64(b)
	pt, b, ok4 = readI64(b)
	m.MessageID, b, ok5 = readStr(b)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return m, false
	}
	m.PublishTime = time.UnixMilli(pt)
	if ev != 0 {
		m.EventTime = time.UnixMilli(ev)
	}
	np, b, ok6 := readU32(b)
	if !ok6 {
		return m, false
	}
	if np > 0 {
		clear(props)
		for i := uint32(0); i < np; i++ {
			k, rest, ok := readStr(b)
			if !ok {
				return m, false
			}
			v, rest, ok := readStr(rest)
			if !ok {
				return m, false
			}
			props[k], b = v, rest
		}
		m.Properties = props
	}
	pl, b, ok := readBytes(b)
	if len(pl) > 0 {
		m.Payload = pl
	}
	return m, ok && len(b) == 0
}

func readU32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, b, false
	}
	return binary.LittleEndian.Uint32(b), b[4:], true
}

func readI64(b []byte) (int64, []byte, bool) {
	if len(b) < 8 {
		return 0, b, false
	}
	return int64(binary.LittleEndian.Uint64(b)), b[8:], true
}

// readBytes reads a u32 length and that many bytes (capacity capped).
func readBytes(b []byte) ([]byte, []byte, bool) {
	if len(b) < 4 {
		return nil, b, false
	}
	n := uint64(binary.LittleEndian.Uint32(b))
	if n > uint64(len(b)-4) {
		return nil, b, false
	}
	return b[4 : 4+n : 4+n], b[4+n:], true
}

func readStr(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", b, false
	}
	n := uint64(binary.LittleEndian.Uint32(b))
	if n > uint64(len(b)-4) {
		return "", b, false
	}
	return unsafe.String(unsafe.SliceData(b[4:]), n), b[4+n:], true
}

func failWith(s string) { hostFail(strPtr(s), int32(len(s))) }

// callContext is stateless: outputs go to the host as they are published
// (the host drops them if the handler then fails), through one reused
// encoding buffer.
type callContext struct{}

var (
	theContext Context = callContext{}
	outBuf     []byte
)

func (callContext) Publish(topic string, m Message) error {
	if inBatch {
		if nPending >= abi.MaxOutputs || len(pending)-resultHeadSize > abi.MaxOutputBytes {
			return fmt.Errorf("function: more than %d outputs or %d bytes for one message", abi.MaxOutputs, abi.MaxOutputBytes)
		}
		pending = appendOutputEntry(pending, topic, &m)
		nPending++
		return nil
	}
	o := abi.Output{Topic: topic, Key: m.Key, Properties: m.Properties, Payload: m.Payload}
	if !m.EventTime.IsZero() {
		o.EventTime = m.EventTime.UnixMilli()
	}
	outBuf = abi.AppendOutput(outBuf[:0], &o)
	if hostEmit(bytesPtr(outBuf), int32(len(outBuf))) != 0 {
		return scratchError()
	}
	return nil
}

func (callContext) State() State { return hostState{} }

var logger = slog.New(hostHandler{})

func (callContext) Log() *slog.Logger { return logger }

func (callContext) UserConfig() map[string]any {
	if userConfig == nil {
		userConfig = decodeUserConfig(readScratch(int64(hostUserConfig())))
	}
	return userConfig
}

type hostState struct{}

func (hostState) Get(key string) ([]byte, bool, error) {
	n := hostStateGet(strPtr(key), int32(len(key)))
	switch {
	case n == abi.NotFound:
		return nil, false, nil
	case n < 0:
		return nil, false, scratchError()
	}
	return append([]byte(nil), readScratch(n)...), true, nil
}

func (hostState) Put(key string, value []byte) error {
	if hostStatePut(strPtr(key), int32(len(key)), bytesPtr(value), int32(len(value))) != 0 {
		return scratchError()
	}
	return nil
}

func (hostState) Delete(key string) error {
	if hostStateDelete(strPtr(key), int32(len(key))) != 0 {
		return scratchError()
	}
	return nil
}

func (hostState) Incr(key string, delta int64) (int64, error) {
	var out [8]byte
	if hostStateIncr(strPtr(key), int32(len(key)), delta, unsafe.Pointer(&out[0])) != 0 {
		return 0, scratchError()
	}
	return int64(binary.LittleEndian.Uint64(out[:])), nil
}

// hostHandler formats records as text and hands them to the host's log.
type hostHandler struct{ attrs []slog.Attr }

func (h hostHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h hostHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	add := func(a slog.Attr) bool { s += " " + a.String(); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	hostLog(int32(r.Level), strPtr(s), int32(len(s)))
	return nil
}

func (h hostHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return hostHandler{attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h hostHandler) WithGroup(string) slog.Handler { return h }
