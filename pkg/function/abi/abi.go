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
const Version = 1

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
