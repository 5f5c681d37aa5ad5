// Package function is the Go SDK for MessageBus functions: small programs
// compiled to WebAssembly that the broker runs on every message of their
// input topics. A function registers its handler in init and is built as a
// WASI reactor:
//
//	package main
//
//	import "github.com/messagebus/messagebus/pkg/function"
//
//	func init() {
//		function.Handle(func(ctx function.Context, in function.Message) error {
//			return ctx.Publish("", function.Message{Key: in.Key, Payload: bytes.ToUpper(in.Payload)})
//		})
//	}
//
//	func main() {}
//
// and built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fn.wasm .
//
// The handler's error fails the message (it is negatively acknowledged and
// redelivered, or dead-lettered after the configured attempts); a panic is
// reported the same way. The module talks to the broker through the
// functions described in docs/functions.md (package abi); outside
// GOOS=wasip1 every call fails with ErrNotWasm, so the package builds
// everywhere for documentation and vetting.
package function

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Message is a message received or published by a function.
//
// An input's strings, Properties and Payload point into a buffer the SDK
// reuses for the next message (decoding without allocating is what keeps a
// call near a microsecond): a handler that keeps any of them past its
// return copies them (strings.Clone, bytes.Clone, maps.Clone). Publish
// copies what it is given at once.
type Message struct {
	// Topic is the topic an input came from; ignored on Publish (the topic
	// is Publish's argument).
	Topic      string
	Key        string
	Properties map[string]string
	Payload    []byte
	// EventTime is the producer's event time (zero when unset).
	EventTime time.Time
	// PublishTime and MessageID ("ledger:entry:batch:partition") are set on
	// inputs only.
	PublishTime time.Time
	MessageID   string
}

// Context is what a handler may do besides looking at its input.
type Context interface {
	// Publish sends msg to topic; "" is the function's output topic. The
	// messages are published after the handler returns nil, in order, and
	// dropped if it fails. An error means the host refused the message
	// (too many or too large outputs in one call).
	Publish(topic string, msg Message) error
	// State is the function's durable key-value state, shared by its
	// instances.
	State() State
	// Log writes to the function's log (the broker's log, tagged with the
	// function's name).
	Log() *slog.Logger
	// UserConfig is the function's --user-config, decoded from JSON (an
	// empty map when none).
	UserConfig() map[string]any
}

// State is a function's durable key-value store. Each call is applied
// before it returns; Incr is atomic across the function's instances.
type State interface {
	// Get returns the value of key and whether it exists.
	Get(key string) ([]byte, bool, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// Incr adds delta to the counter key (absent counts as 0) and returns
	// the new value. A counter is an 8-byte little-endian integer.
	Incr(key string, delta int64) (int64, error)
}

// ErrNotWasm is returned by every host call in a program not built with
// GOOS=wasip1.
var ErrNotWasm = errors.New("function: host calls need GOOS=wasip1 (run the module in MessageBus)")

// Ack acknowledges the input being handled, for a function deployed with
// autoAck=false (or processingGuarantees MANUAL), where the broker leaves
// acknowledging to the function: an input the function neither acks nor
// nacks stays unacknowledged and is redelivered when the instance's
// consumer reconnects (or after timeoutMs, when set). With ATLEAST_ONCE
// the ack is sent once the handler's outputs are receipted. With autoAck
// on it is ignored (the broker acks anyway).
func Ack(ctx Context) error { return setAck(ackDone) }

// Nack negatively acknowledges the input being handled (with autoAck=false):
// it is redelivered after the consumer's negative-ack delay.
func Nack(ctx Context) error { return setAck(nackDone) }

// The ack decisions, as package abi numbers them.
const (
	ackNone  = 0
	ackDone  = 1
	nackDone = 2
)

// HandlerFunc processes one message.
type HandlerFunc func(ctx Context, in Message) error

var handler HandlerFunc

// Handle registers fn as the function's handler. Call it from init: the
// module is a reactor, its main is never run.
func Handle(fn HandlerFunc) { handler = fn }

// userConfig is decoded once per instance: it only changes with an update,
// which restarts the instances.
var userConfig map[string]any

func decodeUserConfig(b []byte) map[string]any {
	m := map[string]any{}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m) // the broker validated it on create
	}
	return m
}
