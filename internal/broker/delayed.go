package broker

import (
	"container/heap"

	"github.com/messagebus/messagebus/internal/delayed"
)

// delayTracker remembers entries whose deliver_at_time lies in the future,
// for one subscription. Called with the subscription's lock held.
type delayTracker interface {
	// add records entry id, due at atMs (unix milliseconds).
	add(id, atMs int64)
	// popDue removes and returns up to max entries due at nowMs or earlier.
	popDue(nowMs int64, max int) []int64
	// next is the earliest due time, if any entry is held.
	next() (atMs int64, ok bool)
	// len is the number of entries held.
	len() int
	// reset forgets everything (the cursor was moved).
	reset()
	// close releases the tracker; a durable one keeps its entries for the
	// next run.
	close() error
	// drop deletes what the tracker keeps (the subscription was removed). It
	// may follow close.
	drop() error
}

// newDelayTracker creates the tracker of a subscription: an index in the
// broker's delayed-delivery store when there is one, else an in-memory heap.
// Either way delayed entries stay unacked, so after a restart the cursor
// reads them again from its mark-delete position and adds them again.
func (b *Broker) newDelayTracker(s *Subscription) delayTracker {
	if b.cfg.Delayed == nil {
		return &memDelays{}
	}
	name := delayed.Name{Topic: s.topic.fullName, Subscription: s.name}
	idx, err := b.cfg.Delayed.Index(name, s.topic.ledgerID, !s.durable)
	if err != nil {
		b.log.Error("open delayed-delivery index, keeping delayed entries in memory",
			"topic", s.topic.fullName, "subscription", s.name, "err", err)
		return &memDelays{}
	}
	return &storedDelays{s: s, idx: idx}
}

// storedDelays is a subscription's index in the delayed-delivery store. The
// index is keyed by topic and subscription name, with the ledger id as epoch
// so that a recreated topic starts empty.
type storedDelays struct {
	s   *Subscription
	idx *delayed.Index
}

func (d *storedDelays) add(id, at int64)    { d.idx.Add(id, at) }
func (d *storedDelays) next() (int64, bool) { return d.idx.Next() }
func (d *storedDelays) len() int            { return d.idx.Len() }
func (d *storedDelays) reset()              { d.idx.Reset() }
func (d *storedDelays) close() error        { return d.idx.Close() }
func (d *storedDelays) drop() error         { return d.idx.Drop() }
func (d *storedDelays) popDue(now int64, max int) []int64 {
	ids := d.idx.PopDue(now, max)
	out := ids[:0]
	for _, id := range ids {
		// After a restart the index may still hold entries the cursor has
		// not read again yet (id >= readPos): the read path delivers them,
		// being due. It may also hold entries delivered since, straight
		// from the read path (pending). Queuing either for replay would
		// deliver it twice. Acked ones are skipped by the caller.
		if id >= d.s.readPos {
			continue
		}
		if _, ok := d.s.pending[id]; ok {
			continue
		}
		out = append(out, id)
	}
	return out
}

type delayedEntry struct{ at, id int64 }

// memDelays is a min-heap by due time.
type memDelays struct {
	h delayHeap
}

type delayHeap []delayedEntry

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h delayHeap) Swap(i, j int)     { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)       { *h = append(*h, x.(delayedEntry)) }
func (h *delayHeap) Pop() any         { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }
func (m *memDelays) add(id, at int64) { heap.Push(&m.h, delayedEntry{at: at, id: id}) }
func (m *memDelays) len() int         { return m.h.Len() }
func (m *memDelays) reset()           { m.h = nil }
func (m *memDelays) close() error     { return nil }
func (m *memDelays) drop() error      { m.h = nil; return nil }

func (m *memDelays) next() (int64, bool) {
	if len(m.h) == 0 {
		return 0, false
	}
	return m.h[0].at, true
}

func (m *memDelays) popDue(now int64, max int) []int64 {
	var out []int64
	for len(m.h) > 0 && m.h[0].at <= now && len(out) < max {
		out = append(out, heap.Pop(&m.h).(delayedEntry).id)
	}
	return out
}
