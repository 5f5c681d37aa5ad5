package broker

import (
	"errors"
	"math/bits"
	"slices"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// maxDispatchBytes bounds the data read per dispatch round.
const maxDispatchBytes = 4 << 20

// Subscription is a cursor on a topic plus the consumers attached to it. One
// goroutine per persistent subscription reads entries and hands them to the
// dispatcher's consumers; acks, flow and redelivery requests arrive from the
// connections' goroutines and wake it.
type Subscription struct {
	topic   *Topic
	name    string
	durable bool

	mu      sync.Mutex
	subType pb.CommandSubscribe_SubType
	disp    dispatcher
	cursor  *ledger.CursorState
	// readPos is the next entry to read for first delivery; entries below it
	// are acked, pending on a consumer, or in replay.
	readPos int64
	// readGen changes whenever readPos is moved backwards, so a dispatch
	// round that read with the old position discards what it read.
	readGen     int64
	pending     map[int64]*pendingEntry
	replay      []int64 // sorted ids to deliver again before new entries
	redelivered map[int64]uint32
	dirty       bool
	stopped     bool
	running     bool

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// pendingEntry is an entry delivered to a consumer and not yet acked.
type pendingEntry struct {
	consumer  *Consumer
	messages  int // messages of the entry still unacked when delivered
	batchSize int
}

func newSubscription(t *Topic, name string, durable bool, cursor *ledger.CursorState) *Subscription {
	s := &Subscription{
		topic:       t,
		name:        name,
		durable:     durable,
		cursor:      cursor,
		pending:     map[int64]*pendingEntry{},
		redelivered: map[int64]uint32{},
		wake:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if cursor != nil {
		s.readPos = cursor.NextUnacked(cursor.MarkDelete + 1)
	}
	return s
}

// attach adds a consumer, choosing the dispatcher on the first one.
func (s *Subscription) attach(c *Consumer, subType pb.CommandSubscribe_SubType) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errShuttingDown
	}
	if s.disp == nil || len(s.disp.consumers()) == 0 {
		d, err := newDispatcher(subType, s)
		if err != nil {
			return err
		}
		s.disp, s.subType = d, subType
	} else if s.subType != subType {
		return newError(pb.ServerError_ConsumerBusy, "subscription "+s.name+" is of a different type ("+s.subType.String()+")")
	}
	if err := s.disp.add(c); err != nil {
		return err
	}
	if !s.running && s.topic.ledger != nil {
		s.running = true
		go s.run()
	}
	return nil
}

// removeConsumer detaches a consumer; its unacked entries go to the others.
// A non-durable subscription disappears with its last consumer.
func (s *Subscription) removeConsumer(c *Consumer) {
	s.mu.Lock()
	if s.disp == nil {
		s.mu.Unlock()
		return
	}
	s.disp.remove(c)
	s.returnPending(c, nil)
	last := len(s.disp.consumers()) == 0
	s.mu.Unlock()
	s.topic.b.metrics.consumers.Dec()
	if last && !s.durable {
		s.topic.removeSubscription(s)
		return
	}
	s.signal()
}

// returnPending moves entries pending on c (all of them, or those in ids) to
// the replay queue, counting a redelivery for each. Called with s.mu held.
func (s *Subscription) returnPending(c *Consumer, ids []int64) {
	move := func(id int64, pe *pendingEntry) {
		delete(s.pending, id)
		s.redelivered[id]++
		s.addReplay(id)
	}
	if ids == nil {
		for id, pe := range s.pending {
			if pe.consumer == c {
				move(id, pe)
			}
		}
		return
	}
	for _, id := range ids {
		if pe, ok := s.pending[id]; ok && pe.consumer == c {
			move(id, pe)
		}
	}
}

func (s *Subscription) addReplay(id int64) {
	i, found := slices.BinarySearch(s.replay, id)
	if !found {
		s.replay = slices.Insert(s.replay, i, id)
	}
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	running := s.running
	s.mu.Unlock()
	close(s.quit)
	if running {
		<-s.done
	}
}

func (s *Subscription) run() {
	defer close(s.done)
	l := s.topic.ledger
	for {
		changed := l.Changed()
		if !s.dispatch() {
			changed = nil // nothing to gain from new entries until woken
		}
		select {
		case <-s.quit:
			return
		case <-s.wake:
		case <-changed:
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
		if len(s.replay) > 0 {
			if !s.dispatchReplay() {
				s.mu.Unlock()
				return false
			}
			s.mu.Unlock()
			continue
		}
		s.readPos = s.cursor.NextUnacked(s.readPos)
		from, gen := s.readPos, s.readGen
		s.mu.Unlock()

		entries, err := l.Read(from, max, maxDispatchBytes)
		if errors.Is(err, ledger.ErrTrimmed) {
			s.mu.Lock()
			if s.readGen == gen && s.readPos < l.FirstEntryID() {
				s.readPos = l.FirstEntryID()
			}
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.topic.b.log.Error("dispatch read failed", "topic", s.topic.fullName, "subscription", s.name, "err", err)
			return false
		}
		if len(entries) == 0 {
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
			if s.cursor.IsAcked(e.ID) {
				s.readPos = e.ID + 1
				continue
			}
			if !s.deliverEntry(e) {
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

// dispatchReplay delivers entries of the replay queue, in id order. Called
// with s.mu held; it releases it while reading. Returns false when no
// consumer could take an entry.
func (s *Subscription) dispatchReplay() bool {
	l := s.topic.ledger
	ids := s.replay
	if len(ids) > s.topic.b.cfg.DispatchBatchEntries {
		ids = ids[:s.topic.b.cfg.DispatchBatchEntries]
	}
	ids = slices.Clone(ids)
	s.mu.Unlock()
	entries := make([]ledger.Entry, 0, len(ids))
	var trimmed []int64
	for _, id := range ids {
		es, err := l.Read(id, 1, 0)
		if errors.Is(err, ledger.ErrTrimmed) || (err == nil && (len(es) == 0 || es[0].ID != id)) {
			trimmed = append(trimmed, id)
			continue
		}
		if err != nil {
			s.topic.b.log.Error("replay read failed", "topic", s.topic.fullName, "entry", id, "err", err)
			trimmed = append(trimmed, id)
			continue
		}
		entries = append(entries, es[0])
	}
	s.mu.Lock()
	for _, id := range trimmed {
		s.removeReplay(id)
	}
	progress := len(trimmed) > 0
	for _, e := range entries {
		i, found := slices.BinarySearch(s.replay, e.ID)
		if !found {
			continue // acked or redelivered meanwhile
		}
		if s.cursor.IsAcked(e.ID) {
			s.replay = slices.Delete(s.replay, i, i+1)
			progress = true
			continue
		}
		if !s.deliverEntry(e) {
			return progress
		}
		s.removeReplay(e.ID)
		progress = true
	}
	return progress
}

func (s *Subscription) removeReplay(id int64) {
	if i, found := slices.BinarySearch(s.replay, id); found {
		s.replay = slices.Delete(s.replay, i, i+1)
	}
}

// hasCapacity reports whether some consumer has permits. Called with s.mu held.
func (s *Subscription) hasCapacity() bool {
	if s.disp == nil {
		return false
	}
	for _, c := range s.disp.consumers() {
		if c.permits > 0 {
			return true
		}
	}
	return false
}

// deliverEntry sends one entry to the consumer the dispatcher picks. Called
// with s.mu held. Returns false when no consumer can take it.
func (s *Subscription) deliverEntry(e ledger.Entry) bool {
	var md wire.MetadataInfo
	if meta, _, err := wire.SplitPayload(e.Data); err == nil {
		err = wire.ParseMetadata(meta, &md)
		if err != nil {
			md.NumMessagesInBatch = 1
		}
	} else {
		md.NumMessagesInBatch = 1
	}
	c := s.disp.next(&md)
	if c == nil {
		return false
	}
	n := int(md.NumMessagesInBatch)
	ackSet := s.cursor.BatchPending(e.ID)
	if ackSet != nil {
		n = 0
		for _, w := range ackSet {
			n += bits.OnesCount64(uint64(w))
		}
	}
	c.permits -= n
	s.pending[e.ID] = &pendingEntry{consumer: c, messages: n, batchSize: int(md.NumMessagesInBatch)}
	c.cn.writeMessage(c.id, s.topic.ledgerID, e.ID, s.redelivered[e.ID], ackSet, e.Data)
	s.topic.b.metrics.msgOut.Add(float64(n))
	return true
}

// ack applies an ACK command. Called from the consumer's connection.
func (s *Subscription) ack(cmd *pb.CommandAck) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cumulative := cmd.GetAckType() == pb.CommandAck_Cumulative
	if cumulative && s.subType == pb.CommandSubscribe_Shared {
		return newError(pb.ServerError_NotAllowedError, "cumulative ack is not allowed on a shared subscription")
	}
	for _, mid := range cmd.GetMessageId() {
		if int64(mid.GetLedgerId()) != s.topic.ledgerID {
			continue // an id from a ledger this topic no longer has
		}
		id := int64(mid.GetEntryId())
		if cumulative {
			through := id
			if len(mid.GetAckSet()) > 0 {
				through = id - 1
			}
			s.cursor.AckCumulative(through)
			for pid := range s.pending {
				if pid <= through {
					s.forget(pid)
				}
			}
			for len(s.replay) > 0 && s.replay[0] <= through {
				s.replay = s.replay[1:]
			}
		}
		if len(mid.GetAckSet()) > 0 {
			size := 64 * len(mid.GetAckSet())
			if pe, ok := s.pending[id]; ok {
				size = pe.batchSize
			}
			if s.cursor.AckBatch(id, mid.GetAckSet(), size) {
				s.forget(id)
				s.removeReplay(id)
			}
		} else if !cumulative {
			s.cursor.Ack(id)
			s.forget(id)
			s.removeReplay(id)
		}
	}
	s.dirty = true
	return nil
}

// forget drops the delivery bookkeeping of an acked entry. Called with s.mu held.
func (s *Subscription) forget(id int64) {
	delete(s.pending, id)
	delete(s.redelivered, id)
}

// redeliver handles REDELIVER_UNACKNOWLEDGED_MESSAGES: the consumer's entries
// (all, or the listed ones) are delivered again with a higher redelivery count.
func (s *Subscription) redeliver(c *Consumer, mids []*pb.MessageIdData) {
	s.mu.Lock()
	if len(mids) == 0 {
		s.returnPending(c, nil)
	} else {
		ids := make([]int64, 0, len(mids))
		for _, m := range mids {
			if int64(m.GetLedgerId()) == s.topic.ledgerID {
				ids = append(ids, int64(m.GetEntryId()))
			}
		}
		s.returnPending(c, ids)
	}
	s.mu.Unlock()
	s.signal()
}

// flow adds permits to a consumer.
func (s *Subscription) flow(c *Consumer, n uint32) {
	s.mu.Lock()
	c.permits += int(n)
	s.mu.Unlock()
	s.signal()
}

// saveCursor hands the cursor to the ledger when it changed.
func (s *Subscription) saveCursor() {
	if !s.durable || s.topic.ledger == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.cursor == nil {
		return
	}
	if err := s.topic.ledger.SaveCursor(s.name, s.cursor); err != nil {
		s.topic.b.log.Error("save cursor", "topic", s.topic.fullName, "subscription", s.name, "err", err)
		return
	}
	s.dirty = false
}

// markDelete returns the cursor's mark-delete entry id.
func (s *Subscription) markDelete() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cursor == nil {
		return -1
	}
	return s.cursor.MarkDelete
}

// resetCursor moves the subscription so that entry next is the next one
// delivered: everything before it counts as acked and everything from it on
// as unacked. The consumers are detached and returned; the caller closes
// them so that their clients subscribe again.
func (s *Subscription) resetCursor(next int64) []*Consumer {
	s.mu.Lock()
	props := s.cursor.Properties
	s.cursor = ledger.NewCursorState(next - 1)
	s.cursor.Properties = props
	s.readPos = next
	s.readGen++
	s.pending = map[int64]*pendingEntry{}
	s.replay = nil
	s.redelivered = map[int64]uint32{}
	s.dirty = true
	var consumers []*Consumer
	if s.disp != nil {
		consumers = append(consumers, s.disp.consumers()...)
		for _, c := range consumers {
			s.disp.remove(c)
		}
	}
	s.mu.Unlock()
	s.topic.b.metrics.consumers.Sub(float64(len(consumers)))
	s.saveCursor()
	return consumers
}
