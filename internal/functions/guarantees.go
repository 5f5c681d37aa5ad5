package functions

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Effectively-once: each output's sequence id is derived from the position
// of the input it came from, and the producer's name from the function and
// the input topic partition, so that after a crash the redelivered input
// produces the same (name, sequence id) pairs and the broker's
// deduplication drops them. Positions are ordered within a topic partition
// and the subscription is Failover, so ids only grow per producer.
//
// Layout: ledger id (19 bits) | entry id (24) | batch index (10) | output
// index (10), in 63 bits.
const (
	seqOutBits   = 10
	seqBatchBits = 10
	seqEntryBits = 24
	seqLedgerMax = 1 << (63 - seqOutBits - seqBatchBits - seqEntryBits)
)

// sequenceID derives output k's sequence id from the input's message id.
func sequenceID(id pulsar.MessageID, k int) (int64, error) {
	l, e, b := id.LedgerID(), id.EntryID(), int64(max(id.BatchIdx(), 0))
	if l < 0 || l >= seqLedgerMax || e < 0 || e >= 1<<seqEntryBits || b >= 1<<seqBatchBits || k >= 1<<seqOutBits {
		return 0, fmt.Errorf("EFFECTIVELY_ONCE: input position %d:%d:%d or output %d is past the range sequence ids are derived from", l, e, b, k)
	}
	return l<<(seqEntryBits+seqBatchBits+seqOutBits) | e<<(seqBatchBits+seqOutBits) | b<<seqOutBits | int64(k), nil
}

// eoProducerName is stable across restarts for one (function, input topic
// partition, output topic).
func eoProducerName(fqfn, input, output string) string {
	h := sha256.Sum256([]byte(input + "\x00" + output))
	return "fn-" + strings.ReplaceAll(fqfn, "/", "-") + "-" + hex.EncodeToString(h[:6])
}
