package broker

import (
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
)

// Markers are server-only entries in a topic (MessageMetadata marker_type
// set: replicated subscriptions' snapshot requests, responses, snapshots
// and updates, replicated_snapshots.go). They are never delivered: a
// subscription's dispatch acknowledges them as it passes them (dispatch.go,
// as Pulsar's dispatchers do), and they are not counted as messages in
// stats or backlogs. The ids of a topic's markers are kept in the marker
// index, persisted in the internal cursor __mb_markers, so that backlogs
// leave them out also for subscriptions that have not read past them.

const markersCursor = internalCursorPrefix + "markers"

// markerShift offsets the ids stored in the index's cursor state: its
// mark-delete stays at 0 and no stored id is 1, so every marker id is an
// individually acked range and never merges into the mark-delete.
const markerShift = 2

type markerIndex struct {
	mu    sync.Mutex
	set   *ledger.CursorState // marker ids + markerShift, acked individually
	dirty bool
}

func (x *markerIndex) load(st *ledger.CursorState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if st != nil && st.MarkDelete == 0 {
		x.set = st.Clone()
	} else {
		x.set = ledger.NewCursorState(0)
	}
}

func (x *markerIndex) add(id int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set == nil {
		x.set = ledger.NewCursorState(0)
	}
	x.set.Ack(id + markerShift)
	x.dirty = true
}

// isMarker reports whether entry id is a marker.
func (x *markerIndex) isMarker(id int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.set != nil && x.set.IsAcked(id+markerShift)
}

// any reports whether the topic has markers.
func (x *markerIndex) any() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.set != nil && x.set.RangeCount() > 0
}

// lastMessageEntry is the id of the last entry that is not a marker (-1:
// none), what readers' HasNext and the last message id report: a marker at
// the end must not make a reader wait for a message it never gets.
func (t *Topic) lastMessageEntry() int64 {
	id := t.ledger.LastEntryID()
	for n := 0; id >= 0 && n < 1000 && t.markers.isMarker(id); n++ {
		id--
	}
	return id
}

// maxMarkerCount bounds the index ranges a backlog count looks at; markers
// beyond are counted in the backlog.
const maxMarkerCount = 4096

// unacked counts the markers in (md, last] that cursor c has not
// acknowledged. Called with the subscription's lock held.
func (x *markerIndex) unacked(c *ledger.CursorState, md, last int64) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set == nil || x.set.RangeCount() == 0 {
		return 0
	}
	n, seen := int64(0), 0
	x.set.AckedRanges(md+1+markerShift, func(lo, hi int64) bool {
		lo, hi = max(lo-markerShift, md+1), min(hi-markerShift, last)
		for id := lo; id <= hi; id++ {
			if !c.IsAcked(id) {
				n++
			}
		}
		seen++
		return hi < last && seen < maxMarkerCount
	})
	return n
}

// markerTail is how many of the last entries keep their markers indexed
// whatever the subscriptions: the last message id skips trailing markers.
const markerTail = 1000

// saveMarkers persists the index when it changed. It keeps only the ids a
// count can need: above every subscription's mark-delete (backlogs, peek)
// and among the last markerTail entries, and never below the first entry
// retention kept. A subscription created later at the earliest entry counts
// older markers in its backlog until its dispatch passes them, as Pulsar's.
func (t *Topic) saveMarkers() {
	x := &t.markers
	x.mu.Lock()
	dirty := x.dirty && x.set != nil
	x.mu.Unlock()
	if !dirty {
		return
	}
	first := t.ledger.LastEntryID() - markerTail
	for _, s := range t.subscriptions() {
		first = min(first, s.markDelete()+1)
	}
	first = max(first, t.ledger.FirstEntryID())
	x.mu.Lock()
	st := ledger.NewCursorState(0)
	x.set.AckedRanges(first+markerShift, func(lo, hi int64) bool {
		for id := max(lo, first+markerShift); id <= hi; id++ {
			st.Ack(id)
		}
		return true
	})
	x.set, x.dirty = st, false
	st = st.Clone()
	x.mu.Unlock()
	if err := t.ledger.SaveCursor(markersCursor, st); err != nil {
		t.b.log.Error("save marker index", "topic", t.fullName, "err", err)
	}
}

// writeMarker appends a marker entry to t and records it in the index;
// done (may be nil) gets its entry id. Markers are not counted as messages.
func (t *Topic) writeMarker(markerType int32, replicateTo []string, payload []byte, done func(id int64, err error)) {
	if t.ledger == nil || t.terminated.Load() {
		if done != nil {
			done(-1, errShuttingDown)
		}
		return
	}
	hp := wire.BuildMarker(markerType, replicateTo, uint64(time.Now().UnixMilli()), payload)
	t.ledger.Append(hp, func(id int64, err error) {
		if err == nil {
			t.markers.add(id)
			t.b.metrics.markers.written.WithLabelValues(markerTypeName(markerType)).Inc()
		} else if t.b.ctx.Err() == nil {
			t.b.log.Warn("write marker", "topic", t.fullName, "type", markerType, "err", err)
		}
		if done != nil {
			done(id, err)
		}
	})
}

func markerTypeName(t int32) string {
	switch t {
	case wire.MarkerSnapshotRequest:
		return "snapshot_request"
	case wire.MarkerSnapshotResponse:
		return "snapshot_response"
	case wire.MarkerSnapshot:
		return "snapshot"
	case wire.MarkerUpdate:
		return "update"
	}
	return "other"
}

// skipMarker is dispatch's handling of a marker entry: acknowledged, never
// delivered; a snapshot marker read by a replicated subscription goes into
// its snapshot cache (as Pulsar's dispatchers do). Called with s.mu held.
func (s *Subscription) skipMarker(id int64, md *wire.MetadataInfo, data []byte) {
	s.cursor.Ack(id)
	s.dirty = true
	if md.MarkerType != wire.MarkerSnapshot || !s.durable {
		return
	}
	_, payload, err := wire.SplitPayload(data)
	if err != nil {
		return
	}
	snap, err := wire.ParseSnapshot(payload)
	if err != nil || !snap.HasLocal {
		return
	}
	s.topic.snapshotRead(s.name, snap)
}
