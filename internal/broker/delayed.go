package broker

import "container/heap"

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
	close() error
}

// newDelayTracker creates the tracker of a subscription. The in-memory heap
// is rebuilt after a restart: delayed entries are unacked, so the cursor
// reads them again from its mark-delete position.
func (b *Broker) newDelayTracker(*Subscription) delayTracker {
	return &memDelays{}
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
