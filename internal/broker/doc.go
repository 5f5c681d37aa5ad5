// Package broker is the Pulsar-protocol TCP server: connections, producers,
// consumers, topics and subscriptions with their dispatchers.
//
// It reaches storage only through ledger, metadata only through meta, and the
// wire only through wire. Files are split by concept: conn.go is the
// connection loop, handle_*.go one protocol request each, topic.go the
// publish path, subscription.go the cursor and dispatch loop, dispatcher.go
// the per-subscription-type consumer choice, load.go how topics load and
// unload, request.go the contexts and goroutines of requests.
//
// Lock order (outer to inner): Broker.mu -> Topic.mu -> Subscription.mu ->
// conn.mu -> conn.wmu, and conn.amu (authentication state) -> conn.wmu. The
// ledger's done callbacks run on the journal goroutine and take only conn.wmu.
// Broker.mu is never held across a metadata read, a ledger call or a wait
// for a topic load or fence (load.go).
package broker
