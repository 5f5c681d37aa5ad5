package broker

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Cursors whose names start with internalCursorPrefix hold broker state,
// not subscriptions.
const (
	internalCursorPrefix = "__mb_"
	dedupCursor          = internalCursorPrefix + "dedup"
)

func isInternalCursor(name string) bool {
	return strings.HasPrefix(name, internalCursorPrefix) || name == compactionCursor
}

// dedupState is a topic's producer deduplication: per producer name, the
// highest sequence id handed to the ledger (pushed) and made durable
// (persisted). A send at or below persisted is a duplicate: answered with a
// receipt of ledger/entry -1 and not stored. One at or below pushed is still
// in flight and refused, so the client retries it.
//
// The state is snapshotted into an internal cursor (properties: producer ->
// sequence id, mark-delete: the last entry the snapshot covers) and rebuilt
// on load by replaying the entries written after the snapshot.
type dedupState struct {
	mu        sync.Mutex
	pushed    map[string]uint64
	persisted map[string]uint64
	lastEntry int64 // last entry reflected in persisted
	dirty     bool
}

// recoverDedup rebuilds the state from the snapshot and the entries after it.
func recoverDedup(ctx context.Context, l ledger.Ledger, snap *ledger.CursorState) (*dedupState, error) {
	d := &dedupState{pushed: map[string]uint64{}, persisted: map[string]uint64{}, lastEntry: -1}
	if snap != nil {
		for name, v := range snap.Properties {
			if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
				d.persisted[name] = seq
			}
		}
		d.lastEntry = snap.MarkDelete
	}
	from := d.lastEntry + 1
	if first := l.FirstEntryID(); from < first {
		from = first
	}
	for from <= l.LastEntryID() {
		es, err := l.Read(ctx, from, 512, 8<<20)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if md, ok := entryMetadata(e.Data); ok {
				seq := md.SequenceID
				if md.HighestSequenceID > seq {
					seq = md.HighestSequenceID
				}
				if name := string(md.ProducerName); seq >= d.persisted[name] {
					d.persisted[name] = seq
				}
			}
			d.lastEntry = e.ID
			from = e.ID + 1
		}
	}
	for name, seq := range d.persisted {
		d.pushed[name] = seq
	}
	d.dirty = true
	return d, nil
}

type dedupVerdict int

const (
	dedupNew dedupVerdict = iota
	dedupDuplicate
	dedupInFlight
)

// check classifies a send and, when new, records it as pushed.
func (d *dedupState) check(producer string, seq uint64) dedupVerdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.persisted[producer]; ok && seq <= p {
		return dedupDuplicate
	}
	if p, ok := d.pushed[producer]; ok && seq <= p {
		return dedupInFlight
	}
	d.pushed[producer] = seq
	return dedupNew
}

// stored records the outcome of an append. A failed append is forgotten so
// that the client's retry is accepted.
func (d *dedupState) stored(producer string, seq uint64, entryID int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if p, ok := d.persisted[producer]; ok {
			d.pushed[producer] = p
		} else {
			delete(d.pushed, producer)
		}
		return
	}
	if seq > d.persisted[producer] || !hasKey(d.persisted, producer) {
		d.persisted[producer] = seq
	}
	if entryID > d.lastEntry {
		d.lastEntry = entryID
	}
	d.dirty = true
}

func hasKey(m map[string]uint64, k string) bool { _, ok := m[k]; return ok }

// lastSequenceID is what PRODUCER_SUCCESS reports: the producer's highest
// persisted sequence id when deduplication knows it, else -1.
func (t *Topic) lastSequenceID(producer string) int64 {
	if t.dedup == nil {
		return -1
	}
	t.dedup.mu.Lock()
	defer t.dedup.mu.Unlock()
	if seq, ok := t.dedup.persisted[producer]; ok {
		return int64(seq)
	}
	return -1
}

// saveDedup snapshots the deduplication state into its cursor when it changed.
func (t *Topic) saveDedup() {
	d := t.dedup
	if d == nil {
		return
	}
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return
	}
	st := ledger.NewCursorState(d.lastEntry)
	st.Properties = make(map[string]string, len(d.persisted))
	for name, seq := range d.persisted {
		st.Properties[name] = strconv.FormatUint(seq, 10)
	}
	d.dirty = false
	d.mu.Unlock()
	if err := t.ledger.SaveCursor(dedupCursor, st); err != nil {
		t.b.log.Error("save deduplication snapshot", "topic", t.fullName, "err", err)
	}
}
