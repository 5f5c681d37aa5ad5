// Package wasm runs functions compiled to WebAssembly (WASI preview 1) in
// process, with wazero. A Runtime holds the compiled modules and the host
// functions of the ABI (package pkg/function/abi, docs/functions.md); an
// Instance is one sandboxed copy of a module that handles one message at a
// time.
//
// Sandbox: each instance has its own linear memory capped at
// Config.MaxMemory, no file system, no network, no environment, a real
// clock and random source, sleeps that return at once. A call that runs
// past Config.CallTimeout is interrupted (wazero closes the module when the
// instance's context is cancelled), a trap, a Go panic that escapes the
// guest, a proc_exit or a host call with pointers outside the guest's
// memory ends the call with an error; in every such case the instance is
// re-instantiated before its next call, and the broker goes on.
//
// The package depends on wazero and pkg/function/abi only; the caller (the
// function worker) supplies state and logging through Env.
package wasm
