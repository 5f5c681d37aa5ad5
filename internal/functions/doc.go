// Package functions is the function worker of a MessageBus node: it keeps
// functions' configurations and code in the metadata store, runs each
// function's instances in the WebAssembly runtime (package wasm), feeds
// them from their input topics and publishes their outputs, and keeps
// their state.
//
// Layering. The worker is a client of the broker: it consumes and produces
// with the official Pulsar Go client over the node's own loopback listener,
// as any application would, with the worker's own credentials. That keeps
// the broker's topic internals closed (no arrow back up from the broker to
// functions), and gives the worker the client's flow control, negative
// acknowledgement, dead-letter policy, batching and producer deduplication
// unchanged; the cost is a loopback TCP hop per batch, which the
// benchmarks in docs/benchmarks.md measure. Metadata goes through
// meta.Store only, so the embedded store and etcd both work.
//
// Files: config.go (FunctionConfig, Pulsar's JSON shape, and its checks),
// store.go (records and chunked code in the metadata store), state.go
// (per-function durable state), manager.go (the API the admin server
// calls), runner.go and instance.go (running instances), guarantees.go
// (acknowledgement per processing guarantee, effectively-once sequence
// ids), status.go (status and stats), metrics.go, placement.go (what
// the worker gives its supervise.Placement: in cluster mode each broker
// runs only the instances placed on it).
//
// Lock order: Manager.applyMu -> runner.triggerMu -> runner.mu -> instance.mu
// (no lock is held across a call into the broker but runner.mu, which
// guards creating producers).
package functions
