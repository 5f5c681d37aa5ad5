package broker

import (
	"errors"
	"math/bits"
	"slices"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// run is the subscription's dispatch goroutine. It sleeps until something
// can change what is deliverable: permits, acks, redelivery requests (wake),
// new entries (the ledger's Changed channel, only while caught up), or the
// next delayed entry coming due.
func (s *Subscription) run() {
	defer close(s.done)
	l := s.topic.ledger
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		changed := l.Changed()
		if !s.dispatch() {
			changed = nil
		}
		var due <-chan time.Time
		s.mu.Lock()
		var wakeAt time.Time
		if s.delays != nil {
			if at, ok := s.delays.next(); ok {
				wakeAt = time.UnixMilli(at)
			}
		}
		if s.throttledUntil.After(time.Now()) && (wakeAt.IsZero() || s.throttledUntil.Before(wakeAt)) {
			wakeAt = s.throttledUntil
		}
		if !wakeAt.IsZero() {
			timer.Reset(time.Until(wakeAt))
			due = timer.C
		}
		s.mu.Unlock()
		select {
		case <-s.quit:
			return
		case <-s.wake:
		case <-changed:
		case <-due:
		}
		if due != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatch delivers what it can. It returns true when it stopped for lack of
// new entries (so new entries should wake it), false when it stopped for lack
// of consumer capacity.
func (s *Subscription) dispatch() bool {
	l := s.topic.ledger
	max := s.topic.b.cfg.DispatchBatchEntries
	for {
		s.mu.Lock()
		if s.stopped || !s.hasCapacity() {
			s.mu.Unlock()
			return false
		}
		now := time.Now()
		if s.throttledUntil.After(now) {
			s.mu.Unlock()
			return false // run wakes at throttledUntil
		}
		s.throttledUntil = time.Time{}
		if s.throttled() {
			s.mu.Unlock()
			return false
		}
		if s.delays != nil {
			for _, id := range s.delays.popDue(time.Now().UnixMilli(), max) {
				if !s.cursor.IsAcked(id) {
					s.addReplay(id)
				}
			}
		}
		progress := false
		if len(s.replay) > 0 {
			progress = s.dispatchReplay() // releases and retakes s.mu
			if s.stopped || !s.hasCapacity() {
				s.mu.Unlock()
				return false
			}
		}
		s.readPos = s.cursor.NextUnacked(s.readPos)
		from, gen := s.readPos, s.readGen
		readCompacted := s.readCompacted
		s.mu.Unlock()
		if readCompacted {
			if v, end, ok := s.compactedRead(from, gen); ok {
				if s.dispatchCompacted(v, from, gen, end) {
					continue
				}
				return false
			}
		}

		lastBefore := l.LastEntryID()
		n, size := s.readBudget(max)
		entries, err := l.Read(s.ctx, from, n, size)
		if errors.Is(err, ledger.ErrTrimmed) {
			s.mu.Lock()
			if s.readGen == gen && s.readPos < l.FirstEntryID() {
				s.readPos = l.FirstEntryID()
			}
			s.mu.Unlock()
			continue
		}
		if err != nil {
			if s.ctx.Err() == nil { // not the subscription stopping
				s.topic.b.log.Error("dispatch read failed", "topic", s.topic.fullName, "subscription", s.name, "err", err)
			}
			return false
		}
		if len(entries) == 0 && from <= lastBefore {
			// Read skips entries lost to damaged storage: all of
			// from..lastBefore are.
			s.mu.Lock()
			if s.readGen == gen {
				s.skipLost(from, lastBefore+1)
			}
			s.mu.Unlock()
			continue
		}
		if len(entries) == 0 {
			if progress {
				continue
			}
			return true
		}
		s.mu.Lock()
		if s.readGen != gen {
			s.mu.Unlock()
			continue
		}
		blocked := false
		for _, e := range entries {
			if e.ID < s.readPos {
				continue
			}
			if e.ID > s.readPos {
				s.skipLost(s.readPos, e.ID) // ids Read skipped
			}
			if !s.cursor.IsAcked(e.ID) && s.deliverEntry(e, nil) == noConsumer {
				blocked = true
				break
			}
			s.readPos = e.ID + 1
		}
		s.mu.Unlock()
		if blocked {
			return false
		}
	}
}

// skipLost acknowledges entries from..to-1, which the ledger lost to damaged
// storage (Read skips them), so that the cursor moves past them as Pulsar's
// does with autoSkipNonRecoverableData; the loss itself is reported by the
// storage. Called with s.mu held.
func (s *Subscription) skipLost(from, to int64) {
	n := int64(0)
	for id := s.cursor.NextUnacked(from); id < to; id = s.cursor.NextUnacked(id + 1) {
		s.cursor.Ack(id)
		n++
	}
	s.readPos = max(s.readPos, to)
	if n == 0 {
		return
	}
	s.dirty = true
	s.topic.b.metrics.lostSkipped.Add(float64(n))
	s.topic.b.log.Warn("entries lost to storage damage skipped", "topic", s.topic.fullName, "subscription", s.name,
		"from", from, "to", to-1, "entries", n)
}

// dispatchReplay delivers entries of the replay queue in id order. Called
// with s.mu held; it releases it while reading. Reports whether any entry
// left the queue.
func (s *Subscription) dispatchReplay() bool {
	l := s.topic.ledger
	ids := s.replay
	if rs, ok := s.disp.(replaySelector); ok {
		ids = rs.replayable(ids, s.topic.b.cfg.DispatchBatchEntries) // skips entries known to be blocked
	}
	if len(ids) > s.topic.b.cfg.DispatchBatchEntries {
		ids = ids[:s.topic.b.cfg.DispatchBatchEntries]
	}
	ids = slices.Clone(ids)
	s.mu.Unlock()
	entries := make([]ledger.Entry, 0, len(ids))
	var gone []int64
	for _, id := range ids {
		es, err := l.Read(s.ctx, id, 1, 0)
		if err != nil && s.ctx.Err() != nil {
			break // stopping: the entries left are not gone
		}
		if err != nil && !errors.Is(err, ledger.ErrTrimmed) {
			s.topic.b.log.Error("replay read failed", "topic", s.topic.fullName, "entry", id, "err", err)
		}
		if err != nil || len(es) == 0 || es[0].ID != id {
			gone = append(gone, id) // trimmed or unreadable: nothing to deliver
			continue
		}
		entries = append(entries, es[0])
	}
	s.mu.Lock()
	progress := len(gone) > 0
	for _, id := range gone {
		s.removeReplay(id)
	}
	for _, e := range entries {
		if _, found := slices.BinarySearch(s.replay, e.ID); !found {
			continue // acked or reset meanwhile
		}
		if s.cursor.IsAcked(e.ID) {
			s.removeReplay(e.ID)
			progress = true
			continue
		}
		switch s.deliverEntry(e, nil) {
		case noConsumer:
			return progress
		case keyBlocked:
			continue // stays queued
		}
		s.removeReplay(e.ID)
		progress = true
	}
	return progress
}

// hasCapacity reports whether some consumer has permits. Called with s.mu held.
func (s *Subscription) hasCapacity() bool {
	if s.disp == nil || s.unackedBlocked {
		return false
	}
	for _, c := range s.disp.consumers() {
		if c.available() {
			return true
		}
	}
	return false
}

// deliverOutcome is what happened to an entry offered for dispatch.
type deliverOutcome int

const (
	delivered  deliverOutcome = iota
	deferred                  // delayed delivery: held until its time
	keyBlocked                // its key must wait; parked in the replay queue
	noConsumer                // no consumer can take anything now
	skipped                   // a marker: acknowledged, not delivered
)

// deliverEntry hands one entry to the consumer the dispatcher picks; mask,
// when not nil, holds the batch indexes a compacted entry still has. Called
// with s.mu held.
func (s *Subscription) deliverEntry(e ledger.Entry, mask []int64) deliverOutcome {
	// The metadata lives in the subscription: passed by pointer through the
	// dispatcher interface, a local would escape and cost an allocation per
	// entry. deliverEntry runs with s.mu held.
	s.md, _ = entryMetadata(e.Data)
	md := &s.md
	if md.HasMarkerType {
		s.skipMarker(e.ID, md, e.Data)
		return skipped
	}
	if s.delays != nil && md.HasDeliverAtTime && md.DeliverAtTime > time.Now().UnixMilli() && !s.topic.delivery.delayedOff.Load() {
		s.delays.add(e.ID, md.DeliverAtTime)
		return deferred
	}
	c, blocked := s.disp.next(e.ID, md)
	if blocked {
		s.addReplay(e.ID)
		return keyBlocked
	}
	if c == nil {
		return noConsumer
	}
	n := int(md.NumMessagesInBatch)
	ackSet := s.cursor.BatchPending(e.ID)
	if mask != nil {
		ackSet = maskAckSet(ackSet, mask)
	}
	if ackSet != nil {
		n = 0
		for _, w := range ackSet {
			n += bits.OnesCount64(uint64(w))
		}
	}
	c.permits -= n
	s.pending[e.ID] = pendingEntry{consumer: c, messages: n, batchSize: int(md.NumMessagesInBatch)}
	s.countDelivered(c, n)
	s.countDispatched(n, len(e.Data))
	s.disp.delivered(c, e.ID, md)
	if c.local != nil {
		c.local.deliver(LocalEntry{LedgerID: s.topic.ledgerID, EntryID: e.ID, RedeliveryCount: s.redelivered[e.ID], AckSet: slices.Clone(ackSet), Data: e.Data})
	} else {
		c.cn.writeMessage(c.id, s.topic.ledgerID, e.ID, s.redelivered[e.ID], ackSet, e.Data)
	}
	s.countOut(c, n, len(e.Data))
	s.topic.b.metrics.msgOut.Add(float64(n))
	return delivered
}

// isShared reports whether a subscription type delivers to many consumers at once.
func isShared(t pb.CommandSubscribe_SubType) bool {
	return t == pb.CommandSubscribe_Shared || t == pb.CommandSubscribe_Key_Shared
}
