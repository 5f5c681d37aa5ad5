package broker

import (
	"context"
	"errors"

	"github.com/messagebus/messagebus/internal/compaction"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Read-compacted dispatch (Pulsar's readEntriesFromCompactedLedger): a
// subscription whose consumer asked for read_compacted reads, while its read
// position is at or below the compaction horizon, the compacted ledger
// instead of the topic, and the topic after the horizon. Entries of the
// compacted ledger carry their original entry ids, so acks and seeks work on
// the topic's ids; the batch indexes compaction removed are sent as acked
// (cleared bits of the MESSAGE's ack_set), which clients skip. Entries the
// view left out are skipped (and acknowledged for durable subscriptions, so
// that they do not count as backlog). The view is looked up on every round,
// so a horizon that moves while a reader is in the compacted part is
// followed, never skipped. A reader that has left the view for the topic
// stays on the topic (leaveView).

// compactedRead decides whether the next read, from topic entry from, is
// from the compacted view, and up to which topic entry (end). A consumer
// starts in the view it finds (inView) and reads views up to that view's
// horizon only, then the topic: a later compaction whose horizon passes its
// position must not move it into a view that lacks the tombstones of keys
// it has already read (apache/pulsar#26190) — from the topic it gets them.
// A consumer behind data retention trimmed reads the view up to the first
// entry still stored.
func (s *Subscription) compactedRead(from, gen int64) (*compactedView, int64, bool) {
	v := s.topic.compactedView()
	if v.l == nil {
		s.leaveView(gen)
		return nil, 0, false
	}
	first := s.topic.ledger.FirstEntryID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readGen != gen {
		return nil, 0, false
	}
	if s.inView {
		if s.viewEnd < 0 {
			s.viewEnd = v.horizon
		}
		if end := min(v.horizon, s.viewEnd); from <= end {
			return v, end, true
		}
		s.inView = false
	}
	if end := min(v.horizon, first-1); from <= end {
		return v, end, true
	}
	return nil, 0, false
}

// leaveView records that the subscription reads the topic itself.
func (s *Subscription) leaveView(gen int64) {
	s.mu.Lock()
	if s.readGen == gen {
		s.inView = false
	}
	s.mu.Unlock()
}

// checkReadCompacted refuses read_compacted where Pulsar does.
func checkReadCompacted(name naming.Topic, subType pb.CommandSubscribe_SubType) error {
	if !name.IsPersistent() || (subType != pb.CommandSubscribe_Exclusive && subType != pb.CommandSubscribe_Failover) {
		return newError(pb.ServerError_NotAllowedError,
			"Read compacted can only be used with exclusive or failover persistent subscriptions")
	}
	return nil
}

// earliestEntry is where "earliest" starts: for read-compacted consumers of
// a compacted topic the compacted view, which may hold entries retention
// already trimmed from the topic.
func (t *Topic) earliestEntry(readCompacted bool) int64 {
	if readCompacted && t.compactedView().l != nil {
		return 0
	}
	return t.ledger.FirstEntryID()
}

// dispatchCompacted delivers entries of the compacted view v from topic
// entry from on, up to topic entry end. It reports whether the dispatch loop should go on (false:
// no consumer capacity, or a read failed).
func (s *Subscription) dispatchCompacted(v *compactedView, from, gen, end int64) bool {
	max := s.topic.b.cfg.DispatchBatchEntries
	cid, err := compaction.Seek(s.ctx, v.l, from)
	var raws []ledger.Entry
	last := v.l.LastEntryID()
	if err == nil && cid <= last {
		raws, err = v.l.Read(s.ctx, cid, max, maxDispatchBytes)
	}
	if err != nil {
		if s.topic.compactedView() != v {
			return true // the view was replaced while reading: read the new one
		}
		if !errors.Is(err, ledger.ErrClosed) {
			s.topic.b.log.Error("read compacted ledger", "topic", s.topic.fullName, "subscription", s.name, "err", err)
		}
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readGen != gen || s.stopped {
		return !s.stopped
	}
	for _, raw := range raws {
		e, err := compaction.DecodeEntry(raw.Data)
		if err != nil {
			s.topic.b.log.Error("undecodable compacted entry", "ledger", v.name, "entry", raw.ID, "err", err)
			return false
		}
		if e.ID < s.readPos {
			continue
		}
		if e.ID > end {
			s.skipCompacted(s.readPos, end+1)
			return true
		}
		s.skipCompacted(s.readPos, e.ID)
		if _, pending := s.pending[e.ID]; !pending && !s.cursor.IsAcked(e.ID) {
			if s.deliverEntry(ledger.Entry{ID: e.ID, Data: e.Data}, e.Mask) == noConsumer {
				return false
			}
		}
		s.readPos = e.ID + 1
		if raw.ID == last {
			break
		}
	}
	if len(raws) == 0 || raws[len(raws)-1].ID >= last {
		s.skipCompacted(s.readPos, end+1) // the view ends here
	}
	return true
}

// skipCompacted moves the read position over entries from..to-1 that the
// compacted view left out. Called with s.mu held.
func (s *Subscription) skipCompacted(from, to int64) {
	if to <= from {
		return
	}
	if s.durable {
		for id := s.cursor.NextUnacked(from); id < to; id = s.cursor.NextUnacked(id + 1) {
			if _, pending := s.pending[id]; !pending {
				s.cursor.Ack(id)
				s.dirty = true
			}
		}
	}
	s.readPos = max(s.readPos, to)
}

// maskAckSet combines the pending set of a partly acked entry (nil: every
// message pending) with the surviving batch indexes of a compacted entry.
func maskAckSet(pending, mask []int64) []int64 {
	if pending == nil {
		return mask
	}
	out := make([]int64, min(len(pending), len(mask)))
	for i := range out {
		out[i] = pending[i] & mask[i]
	}
	return out
}

// lastCompactedMessage returns the last message of the compacted view as
// (entry, batch index); entry -1 when the view is empty.
func (t *Topic) lastCompactedMessage(ctx context.Context, v *compactedView) (int64, int32) {
	last := v.l.LastEntryID()
	if last < 0 {
		return -1, -1
	}
	e, err := compaction.ReadEntry(ctx, v.l, last)
	if err != nil {
		return -1, -1
	}
	md, ok := entryMetadata(e.Data)
	if !ok || !md.HasNumMessagesInBatch {
		return e.ID, -1
	}
	return e.ID, int32(e.LastIndex(int(md.NumMessagesInBatch)))
}

func (s *Subscription) isReadCompacted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readCompacted
}
