package broker

import (
	"context"
	"slices"
	"sync"
	"time"

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
	pending     map[int64]pendingEntry // by value: no allocation per delivery
	replay      []int64                // sorted ids to deliver again before new entries
	redelivered map[int64]uint32
	md          wire.MetadataInfo // scratch of deliverEntry
	dirty       bool
	stopped     bool
	running     bool
	// readCompacted: the consumer reads the compacted view up to the
	// horizon (dispatch_compacted.go).
	readCompacted bool
	// inView: the consumer reads the compacted view while at or below the
	// horizon; cleared once it reads the topic itself (dispatch_compacted.go).
	inView bool
	// viewEnd is the horizon of the view the consumer started in (-1: not
	// yet); it reads views no further, then the topic.
	viewEnd int64
	// delays holds entries whose deliver_at_time is in the future (Shared
	// and Key_Shared only); nil for other types and non-persistent topics.
	delays delayTracker
	// unacked counts the messages pending on all consumers of a Shared or
	// Key_Shared subscription; at maxUnacked (0: no limit) dispatch stops
	// until they are acked down to half (unacked.go).
	unacked        int
	maxUnacked     int
	unackedBlocked bool
	// lastActive is when the subscription was created or loaded or last
	// had a consumer join or leave (subscription expiration, limits.go).
	lastActive time.Time
	// throttle is the subscription's own dispatch rate (nil: none); while
	// a rate is in debt dispatch waits until throttledUntil
	// (throttle_policies.go).
	throttle       *throttle
	throttledUntil time.Time

	// ctx ends when the subscription stops; its ledger reads use it.
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}

	out flowCounter // admin stats (rates.go)
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
		pending:     map[int64]pendingEntry{},
		redelivered: map[int64]uint32{},
		lastActive:  time.Now(),
		wake:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(t.b.ctx)
	s.throttle = t.newSubscriptionThrottle()
	if cursor != nil {
		s.readPos = cursor.NextUnacked(cursor.MarkDelete + 1)
	}
	return s
}

// joinedNotifyDelay is how long after its SUBSCRIBE success a failover
// consumer is told whether it is active. The Go client registers a consumer
// only after it has handled the success, on another goroutine, and drops an
// ACTIVE_CONSUMER_CHANGE for a consumer it does not know yet; Pulsar
// announces after activeConsumerFailoverDelayTimeMillis (1 s) for the same
// reason.
const joinedNotifyDelay = 500 * time.Millisecond

// confirmJoined runs once c's SUBSCRIBE success was written: a failover
// subscription then tells c (a moment later, see joinedNotifyDelay) whether
// it is active.
func (s *Subscription) confirmJoined(c *Consumer) {
	s.mu.Lock()
	_, failover := s.disp.(*failoverDispatcher)
	s.mu.Unlock()
	if !failover {
		return
	}
	time.AfterFunc(joinedNotifyDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d, ok := s.disp.(*failoverDispatcher); ok && !s.stopped {
			d.joined(c)
		}
	})
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
		if s.delays == nil && s.topic.ledger != nil && isShared(subType) {
			s.delays = s.topic.b.newDelayTracker(s)
		}
	} else if s.subType != subType {
		return newError(pb.ServerError_ConsumerBusy, "subscription "+s.name+" is of a different type ("+s.subType.String()+")")
	}
	if err := s.disp.add(c); err != nil {
		return err
	}
	s.lastActive = time.Now()
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
	s.lastActive = time.Now()
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
	move := func(id int64, pe pendingEntry) {
		delete(s.pending, id)
		s.disp.released(pe.consumer, id)
		s.countReleased(pe.consumer, pe.messages)
		s.redelivered[id]++
		if s.readCompacted {
			// Exclusive or failover: rewind, as Pulsar's single-active-consumer
			// dispatcher does, so the entry is read again from the view.
			if id < s.readPos {
				s.readPos = id
				s.readGen++
			}
			return
		}
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
	s.cancel()
	close(s.quit)
	if running {
		<-s.done
	}
	s.mu.Lock()
	if s.delays != nil {
		s.delays.close()
	}
	s.mu.Unlock()
}

func (s *Subscription) removeReplay(id int64) {
	if i, found := slices.BinarySearch(s.replay, id); found {
		s.replay = slices.Delete(s.replay, i, i+1)
	}
}

// ack applies an ACK command. Called from the consumer's connection.
func (s *Subscription) ack(cmd *pb.CommandAck) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cumulative := cmd.GetAckType() == pb.CommandAck_Cumulative
	if cumulative && isShared(s.subType) {
		return newError(pb.ServerError_NotAllowedError, "cumulative ack is not allowed on a "+s.subType.String()+" subscription")
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
	if pe, ok := s.pending[id]; ok {
		delete(s.pending, id)
		s.disp.released(pe.consumer, id)
		s.countReleased(pe.consumer, pe.messages)
	}
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
	for id, pe := range s.pending {
		s.disp.released(pe.consumer, id)
		s.countReleased(pe.consumer, pe.messages)
	}
	if s.delays != nil {
		s.delays.reset()
	}
	props := s.cursor.Properties
	s.cursor = ledger.NewCursorState(next - 1)
	s.cursor.Properties = props
	s.readPos = next
	s.readGen++
	s.inView, s.viewEnd = true, -1
	s.pending = map[int64]pendingEntry{}
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
