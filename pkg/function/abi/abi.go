// Package abi is the binary interface between MessageBus and a WebAssembly
// function: the names of the host functions and exports, and the encoding of
// the input and output records that cross the boundary. The host
// (internal/functions/wasm) and the Go SDK (pkg/function) both use it; a
// module written in another language follows docs/functions.md, which
// describes the same thing in prose.
//
// It is pure Go without dependencies so that it builds for GOOS=wasip1.
package abi

import (
	"encoding/binary"
	"errors"
)

// Version is the ABI version a module reports from its ExportVersion export.
// Version 2 adds ExportHandleBatch and FnResult; the host accepts modules of
// every version from MinVersion on (a version-1 module is called once per
// message through ExportHandle).
const (
	Version    = 2
	MinVersion = 1
)

// HostModule is the import module name of the host functions.
const HostModule = "mb"

// Exports of a module.
const (
	// ExportHandle is called once per message: handle(inputLen i32) -> i32.
	// The input record is in the scratch buffer; the result is one of the
	// Result* codes.
	ExportHandle = "mb_handle"
	// ExportVersion returns Version: mb_abi_version() -> i32.
	ExportVersion = "mb_abi_version"
	// ExportHandleBatch (version 2) is called with many messages at once:
	// handle_batch(count i32, len i32) -> i32. The scratch buffer holds
	// count records, each a u32 length and an input record (AppendBatch).
	// The module handles them in order and reports each one with FnResult
	// before it starts the next; it stops early when FnResult says so. The
	// result is ResultOK, or ResultFailed when the batch could not be read.
	ExportHandleBatch = "mb_handle_batch"
)

// Results of ExportHandle.
const (
	ResultOK     = 0 // processed; the outputs emitted are published
	ResultFailed = 1 // the function reported an error (set with fail)
)

// Host functions, all in module HostModule. Pointers and lengths are i32;
// a pointer range outside the module's memory traps the call.
const (
	// scratch_read(ptr, len) -> i32: copies up to len bytes of the scratch
	// buffer (the input record, a state value, the user config or an error
	// text, whichever the last call put there) to ptr; returns the count.
	FnScratchRead = "scratch_read"
	// emit(ptr, len) -> i32: one output record (EncodeOutput); 0 or ErrCode.
	FnEmit = "emit"
	// fail(ptr, len): the error message of this call.
	FnFail = "fail"
	// log(level, ptr, len): level is a slog level (-4 debug, 0 info, 4 warn, 8 error).
	FnLog = "log"
	// user_config() -> i32: the function's user config (JSON) goes to the
	// scratch buffer; returns its length.
	FnUserConfig = "user_config"
	// state_get(kptr, klen) -> i64: the value goes to the scratch buffer;
	// returns its length, NotFound, or ErrCode (error text in scratch).
	FnStateGet = "state_get"
	// state_put(kptr, klen, vptr, vlen) -> i32: 0 or ErrCode.
	FnStatePut = "state_put"
	// state_delete(kptr, klen) -> i32: 0 or ErrCode.
	FnStateDelete = "state_delete"
	// state_incr(kptr, klen, delta i64, outptr) -> i32: adds delta to the
	// counter (an 8-byte little-endian value; absent is 0) atomically and
	// writes the new value to outptr (8 bytes LE); 0 or ErrCode.
	FnStateIncr = "state_incr"
	// result(ptr, len) -> i32 (version 2, inside ExportHandleBatch): the
	// outcome of the batch's next message (AppendResult); returns 0 to go
	// on with the next message, 1 to stop the batch here.
	FnResult = "result"
)

// Ack decisions a module reports per message in its result: what the
// function itself did with its input (Pulsar's autoAck=false, where the
// function acknowledges its inputs).
const (
	AckNone  = 0 // the function did not ack (the broker acks per autoAck)
	AckDone  = 1 // the function acked its input
	NackDone = 2 // the function negatively acked its input
)

// MaxOutputs and MaxOutputBytes bound what one message's handler may
// publish, so that a module cannot make the host buffer without end.
const (
	MaxOutputs     = 10000
	MaxOutputBytes = 64 << 20
)

// Negative results of host functions.
const (
	NotFound = -1 // state_get: no such key
	ErrCode  = -2 // the call failed; the scratch buffer holds the reason
)

// Message is an input record: what the host passes to ExportHandle.
type Message struct {
	Topic       string
	Key         string
	EventTime   int64 // ms since the epoch; 0 when unset
	PublishTime int64 // ms since the epoch
	MessageID   string
	Properties  map[string]string
	Payload     []byte
}

// Output is an output record: what a module passes to emit. An empty Topic
// means the function's configured output topic.
type Output struct {
	Topic      string
	Key        string
	EventTime  int64
	Properties map[string]string
	Payload    []byte
}

// ErrShort is returned for a record cut short or with a length past its end.
var ErrShort = errors.New("abi: truncated record")

// AppendMessage appends m's encoding to b. Layout (little-endian):
// str topic, str key, i64 event time, i64 publish time, str message id,
// u32 property count, (str name, str value)*, str payload — where str is a
// u32 length followed by the bytes.
func AppendMessage(b []byte, m *Message) []byte {
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Key)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.EventTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.PublishTime))
	b = appendStr(b, m.MessageID)
	b = appendProps(b, m.Properties)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Payload)))
	return append(b, m.Payload...)
}

// DecodeMessage decodes an input record. Strings and the payload are copies.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	d := decoder{b: b}
	m.Topic = d.str()
	m.Key = d.str()
	m.EventTime = d.i64()
	m.PublishTime = d.i64()
	m.MessageID = d.str()
	m.Properties = d.props()
	m.Payload = d.bytes()
	return m, d.done()
}

// AppendOutput appends o's encoding to b: str topic, str key, i64 event
// time, u32 property count, (str name, str value)*, str payload.
func AppendOutput(b []byte, o *Output) []byte {
	b = appendStr(b, o.Topic)
	b = appendStr(b, o.Key)
	b = binary.LittleEndian.AppendUint64(b, uint64(o.EventTime))
	b = appendProps(b, o.Properties)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(o.Payload)))
	return append(b, o.Payload...)
}

// DecodeOutput decodes an output record. Strings and the payload are copies.
func DecodeOutput(b []byte) (Output, error) {
	var o Output
	d := decoder{b: b}
	o.Topic = d.str()
	o.Key = d.str()
	o.EventTime = d.i64()
	o.Properties = d.props()
	o.Payload = d.bytes()
	return o, d.done()
}

// AppendBatch appends one batch entry: m's record preceded by its u32 length.
func AppendBatch(b []byte, m *Message) []byte {
	at := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = AppendMessage(b, m)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// Result is the outcome of one message of a batch.
type Result struct {
	Status  int32  // ResultOK or ResultFailed
	Ack     int32  // AckNone, AckDone or NackDone
	Error   string // the failure's text when Status is ResultFailed
	Outputs []Output
}

// AppendResultHead appends a result's fixed part: u8 status, u8 ack, str
// error, u32 output count; the outputs follow, each a str holding an
// output record (AppendOutput).
func AppendResultHead(b []byte, status, ack int32, errText string, outputs int) []byte {
	b = append(b, byte(status), byte(ack))
	b = appendStr(b, errText)
	return binary.LittleEndian.AppendUint32(b, uint32(outputs))
}

// DecodeResult decodes a result record; outputs are appended to r.Outputs
// (reusing its array) and are copies. maxOutputs bounds their count.
func DecodeResult(b []byte, r *Result, maxOutputs int) error {
	d := decoder{b: b}
	head := d.take(2)
	if head == nil {
		return ErrShort
	}
	r.Status, r.Ack = int32(head[0]), int32(head[1])
	if r.Status != ResultOK && r.Status != ResultFailed {
		return errors.New("abi: result status must be 0 or 1")
	}
	if r.Ack > NackDone {
		return errors.New("abi: result ack must be 0, 1 or 2")
	}
	r.Error = d.str()
	n := d.u32()
	if d.err != nil {
		return d.err
	}
	if int(n) > maxOutputs || uint64(n)*4 > uint64(len(d.b)) {
		return errors.New("abi: result holds too many outputs")
	}
	r.Outputs = r.Outputs[:0]
	for range n {
		rec := d.take(uint64(d.u32()))
		if d.err != nil {
			return d.err
		}
		o, err := DecodeOutput(rec)
		if err != nil {
			return err
		}
		r.Outputs = append(r.Outputs, o)
	}
	return d.done()
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendProps(b []byte, p map[string]string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	for k, v := range p {
		b = appendStr(b, k)
		b = appendStr(b, v)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.take(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (d *decoder) i64() int64 {
	v := d.take(8)
	if v == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(v))
}

func (d *decoder) str() string { return string(d.take(uint64(d.u32()))) }

func (d *decoder) bytes() []byte {
	v := d.take(uint64(d.u32()))
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) props() map[string]string {
	n := d.u32()
	if n == 0 || d.err != nil {
		return nil
	}
	// Each property takes at least 8 bytes: a count past that is a lie.
	if uint64(n)*8 > uint64(len(d.b)) {
		d.err = ErrShort
		return nil
	}
	p := make(map[string]string, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		k := d.str()
		p[k] = d.str()
	}
	return p
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errors.New("abi: trailing bytes after record")
	}
	return d.err
}
