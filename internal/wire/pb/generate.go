// Package pb holds the Go types generated from pulsar_api.proto, MessageBus's
// own copy of the Pulsar binary protocol schema. Only the wire facts (names,
// field numbers, types, defaults) are shared with Pulsar; the proto package is
// messagebus.wire so it can coexist with the official client's generated code.
package pb

// Regenerate with protoc (3.21) and protoc-gen-go v1.36.12 on PATH.

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative pulsar_api.proto
