// Package ledger is the managed-ledger layer: an append-only log of entries per
// persistent topic, the cursors that remember how far each subscription has
// acknowledged, and trimming. It knows nothing of Pulsar commands: an entry is
// an opaque byte slice and a cursor is a set of acknowledged entry ids.
//
// Implementations: ledger/local (embedded journal, durable) and ledger/memory
// (fast unit tests). ledger/ledgertest holds the conformance tests both pass.
//
// Dependencies: this package and everything below it must not import wire,
// broker or any other package that knows about the Pulsar protocol; the broker
// depends on ledger, never the reverse.
package ledger
