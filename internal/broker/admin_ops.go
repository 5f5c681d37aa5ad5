package broker

// Operations of the admin REST API: creating, deleting and terminating
// topics, statistics, and acting on subscriptions (create at a position,
// delete, skip, reset, expire, peek). Each acts on one topic or partition;
// fanning out over the partitions of a partitioned topic is the caller's job.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Errors of the admin operations, wrapped with the name concerned. The
// admin API maps each to an HTTP status.
var (
	ErrTopicNotFound        = errors.New("topic not found")
	ErrTopicExists          = errors.New("topic already exists")
	ErrTopicBusy            = errors.New("topic has connected producers or consumers")
	ErrSubscriptionNotFound = errors.New("subscription not found")
	ErrSubscriptionExists   = errors.New("subscription already exists")
	ErrSubscriptionBusy     = errors.New("subscription has connected consumers")
	ErrMessageNotFound      = errors.New("message not found")
	// ErrNotAllowed refuses operations that need storage on non-persistent topics.
	ErrNotAllowed = errors.New("operation not allowed")
)

// terminatedCursor marks a terminated topic. Its mark-delete position is the
// last entry, so it never holds data back; its presence survives restarts.
const terminatedCursor = internalCursorPrefix + "terminated"

// maxRangeScan bounds the entries examined to list a cursor's acknowledged
// ranges in internal stats; the count of ranges is always exact.
const maxRangeScan = 1 << 20

// MessageID is the position of a stored entry. BatchIndex is -1 unless it
// names a message inside a batch; Partition is -1 for a non-partitioned topic.
type MessageID struct {
	LedgerID   int64
	EntryID    int64
	Partition  int
	BatchIndex int32
}

// LatestLedgerID and EarliestLedgerID are the ledger ids of Pulsar's special
// message ids Latest (entry MaxInt64) and Earliest (entry -1).
const (
	LatestLedgerID   = math.MaxInt64
	EarliestLedgerID = -1
)

// Message is a stored entry: MessageMetadata and payload as the client sent them.
type Message struct {
	ID   MessageID
	Data []byte
}

// TopicStats are the counters and connections of a loaded topic.
type TopicStats struct {
	MsgIn, BytesIn   int64
	MsgOut, BytesOut int64
	MsgRateIn        float64
	ThroughputIn     float64 // bytes/s
	MsgRateOut       float64
	ThroughputOut    float64
	StorageSize      int64
	Entries          int64
	OffloadedSize    int64 // bytes of entries in the object store (tiered storage)
	Deduplication    bool
	Terminated       bool
	Publishers       []PublisherStats
	Subscriptions    map[string]SubscriptionStats
	Compaction       CompactionStats // compaction.go
}

// PublisherStats describe one producer.
type PublisherStats struct {
	ID             uint64
	Name           string
	Address        string
	ClientVersion  string
	Metadata       map[string]string
	ConnectedSince time.Time
	AccessMode     string
	MsgIn          int64
	BytesIn        int64
	MsgRateIn      float64
	ThroughputIn   float64
}

// SubscriptionStats describe one subscription.
type SubscriptionStats struct {
	Type           string // Exclusive, Shared, Failover, Key_Shared
	Durable        bool
	Backlog        int64 // unacknowledged entries
	Unacked        int64 // messages delivered and not acknowledged
	Delayed        int64 // entries held for delayed delivery
	MsgOut         int64
	BytesOut       int64
	MsgRateOut     float64
	ThroughputOut  float64
	ActiveConsumer string
	AckedRanges    int
	Properties     map[string]string
	Consumers      []ConsumerStats
}

// ConsumerStats describe one consumer.
type ConsumerStats struct {
	ID             uint64
	Name           string
	Address        string
	ClientVersion  string
	Metadata       map[string]string
	ConnectedSince time.Time
	Permits        int
	Unacked        int
	Priority       int32
	MsgOut         int64
	BytesOut       int64
	MsgRateOut     float64
	ThroughputOut  float64
}

// InternalStats describe a topic's ledger and cursors.
type InternalStats struct {
	LedgerID     int64
	FirstEntryID int64
	LastEntryID  int64
	Entries      int64
	Size         int64
	// LostEntries counts the entries between FirstEntryID and LastEntryID
	// lost to damaged storage (ledger.DamageReporter).
	LostEntries int64
	Terminated  bool
	Cursors     map[string]CursorStats
	Compaction  CompactionStats // compaction.go
}

// CursorStats describe a subscription's cursor. Positions are entry ids in
// the topic's ledger.
type CursorStats struct {
	Durable     bool
	MarkDelete  int64
	ReadPos     int64
	AckedRanges [][2]int64 // inclusive; may be cut short on huge backlogs
	RangeCount  int
	Backlog     int64
	MsgOut      int64
}

// flowCounter counts the messages and bytes through a producer, consumer or
// subscription, and derives rates from them when asked.
type flowCounter struct {
	msgs, bytes atomic.Int64
	start       atomic.Int64 // unix nanos of the first add

	mu                  sync.Mutex // a leaf: taken under Topic.mu or Subscription.mu
	at                  time.Time  // last rate sample
	lastMsgs, lastBytes int64
	msgRate, byteRate   float64
}

// rateWindow is the shortest interval rates are computed over.
const rateWindow = time.Second

func (f *flowCounter) add(msgs, bytes int) {
	if f.start.Load() == 0 {
		f.start.CompareAndSwap(0, time.Now().UnixNano())
	}
	f.msgs.Add(int64(msgs))
	f.bytes.Add(int64(bytes))
}

// rates returns messages/s and bytes/s averaged since the previous sample
// (the first add for the first one), sampling again at most once per
// rateWindow; between samples it repeats the last rates.
func (f *flowCounter) rates(now time.Time) (msgRate, byteRate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at.IsZero() {
		start := f.start.Load()
		if start == 0 {
			return 0, 0
		}
		f.at = time.Unix(0, start)
	}
	if el := now.Sub(f.at); el >= rateWindow {
		m, b := f.msgs.Load(), f.bytes.Load()
		f.msgRate = float64(m-f.lastMsgs) / el.Seconds()
		f.byteRate = float64(b-f.lastBytes) / el.Seconds()
		f.at, f.lastMsgs, f.lastBytes = now, m, b
	}
	return f.msgRate, f.byteRate
}

// countOut records an entry of n messages dispatched to c. Called with s.mu held.
func (s *Subscription) countOut(c *Consumer, n, bytes int) {
	c.out.add(n, bytes)
	s.out.add(n, bytes)
}

// checkTerminated refuses producers on a terminated topic.
func (t *Topic) checkTerminated() error {
	if t.terminated.Load() {
		return newError(pb.ServerError_TopicTerminatedError, "topic "+t.fullName+" was terminated")
	}
	return nil
}

// refuseTerminated answers a send on a terminated topic with SEND_ERROR and
// reports whether it did. The caller did p.begin().
func (t *Topic) refuseTerminated(p *Producer, sf *wire.SendFields) bool {
	if !t.terminated.Load() {
		return false
	}
	p.cn.sendError(*sf, pb.ServerError_TopicTerminatedError, "topic "+t.fullName+" was terminated")
	p.inflight.Done()
	return true
}

// TopicExists reports whether a topic is loaded, stored, or a partition of
// an existing partitioned topic (partitions exist from their creation, as in
// Pulsar, even before their ledger does).
func (b *Broker) TopicExists(ctx context.Context, name naming.Topic) (bool, error) {
	b.mu.Lock()
	_, loaded := b.topics[name.String()]
	b.mu.Unlock()
	if loaded {
		return true, nil
	}
	if name.IsPersistent() {
		stored, err := b.store.Topics(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range stored {
			if s == name.String() {
				return true, nil
			}
		}
	}
	if i := name.PartitionIndex(); i >= 0 {
		n, err := b.meta.PartitionedTopic(ctx, name.Partitioned())
		if err != nil {
			return false, err
		}
		return i < n, nil
	}
	return false, nil
}

// existingTopic loads a topic that exists; ErrTopicNotFound otherwise. A
// delete between the check and the load recreates the topic empty, as a
// client's lookup would.
func (b *Broker) existingTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	ok, err := b.TopicExists(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	return b.getTopic(ctx, name)
}

// persistentTopic is existingTopic restricted to persistent topics.
func (b *Broker) persistentTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	if !name.IsPersistent() {
		return nil, fmt.Errorf("%w on non-persistent topic %s", ErrNotAllowed, name)
	}
	return b.existingTopic(ctx, name)
}

// CreateTopic creates a non-partitioned topic; ErrTopicExists when it exists.
func (b *Broker) CreateTopic(ctx context.Context, name naming.Topic) error {
	ok, err := b.TopicExists(ctx, name)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	_, err = b.getTopic(ctx, name)
	return err
}

// hasClients reports whether producers or consumers are attached.
func (t *Topic) hasClients() bool {
	t.mu.Lock()
	n := len(t.producers) + len(t.waiting)
	t.mu.Unlock()
	for _, s := range t.subscriptions() {
		s.mu.Lock()
		if s.disp != nil {
			n += len(s.disp.consumers())
		}
		s.mu.Unlock()
	}
	return n > 0
}

// HasClients reports whether a loaded topic has producers or consumers; a
// topic that is not loaded has none.
func (b *Broker) HasClients(name naming.Topic) bool {
	b.mu.Lock()
	t := b.topics[name.String()]
	b.mu.Unlock()
	return t != nil && t.hasClients()
}

// DeleteTopic deletes a topic and its data. Without force it refuses
// (ErrTopicBusy) while producers or consumers are connected; with force they
// are closed first (their clients reconnect and, topics being created on
// use, find a new empty topic).
func (b *Broker) DeleteTopic(ctx context.Context, name naming.Topic, force bool) error {
	full := name.String()
	release := b.fence(full) // so that no client reloads the topic before its ledger is gone
	defer release()
	b.mu.Lock()
	t := b.topics[full]
	b.mu.Unlock()
	if t != nil {
		if !force && t.hasClients() {
			return fmt.Errorf("%w: %s", ErrTopicBusy, name)
		}
		subs := t.subscriptions()
		if err := b.unloadFenced(full); err != nil {
			return fmt.Errorf("close %s: %w", name, err)
		}
		for _, s := range subs {
			s.mu.Lock()
			if s.delays != nil {
				if err := s.delays.drop(); err != nil {
					b.log.Error("drop delayed-delivery index", "topic", full, "subscription", s.name, "err", err)
				}
			}
			s.mu.Unlock()
		}
	}
	if !name.IsPersistent() {
		if t == nil {
			return fmt.Errorf("%w: %s", ErrTopicNotFound, name)
		}
		return nil
	}
	err := b.store.Delete(ctx, full)
	if err == nil || errors.Is(err, ledger.ErrNotFound) {
		b.deleteCompactedLedgers(ctx, full)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		if t != nil {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	return err
}

// TerminateTopic seals a topic: its producers are closed and new ones, and
// any further send, are refused with TopicTerminatedError. It returns the
// id of the last entry. Terminating a terminated topic returns it again.
func (b *Broker) TerminateTopic(ctx context.Context, name naming.Topic) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	t.mu.Lock()
	already := t.terminated.Swap(true)
	producers := make([]*Producer, 0, len(t.producers)+len(t.waiting))
	for _, p := range t.producers {
		producers = append(producers, p)
	}
	attached := len(producers)
	producers = append(producers, t.waiting...)
	t.producers = map[string]*Producer{}
	t.waiting = nil
	t.exclusive = nil
	t.mu.Unlock()
	b.metrics.producers.Sub(float64(attached))
	// closeByBroker waits for each producer's sends already handed to the
	// ledger, so the last entry read below is the last one ever.
	for _, p := range producers {
		p.closeByBroker()
	}
	last := t.ledger.LastEntryID()
	if !already {
		if err := t.ledger.SaveCursor(terminatedCursor, ledger.NewCursorState(last)); err != nil {
			return MessageID{}, fmt.Errorf("persist termination of %s: %w", name, err)
		}
	}
	return MessageID{LedgerID: t.ledgerID, EntryID: last, Partition: name.PartitionIndex(), BatchIndex: -1}, nil
}

// TopicStats returns the statistics of a topic, loading it if it exists.
func (b *Broker) TopicStats(ctx context.Context, name naming.Topic) (TopicStats, error) {
	t, err := b.existingTopic(ctx, name)
	if err != nil {
		return TopicStats{}, err
	}
	now := time.Now()
	st := TopicStats{
		MsgIn:         t.msgIn.Load(),
		BytesIn:       t.bytesIn.Load(),
		Deduplication: t.dedup != nil,
		Terminated:    t.terminated.Load(),
		Subscriptions: map[string]SubscriptionStats{},
	}
	if t.ledger != nil {
		st.StorageSize = t.ledger.Size()
		st.Entries = t.ledger.Entries()
		st.OffloadedSize = offloadedSize(t.ledger)
		st.Compaction = t.compactionStats()
	}
	t.mu.Lock()
	for _, p := range t.producers {
		ps := PublisherStats{ID: p.id, Name: p.name, Address: remoteAddr(p.cn), AccessMode: "Shared",
			ClientVersion: p.client.version, Metadata: p.client.metadata, ConnectedSince: p.client.connectedSince,
			MsgIn: p.in.msgs.Load(), BytesIn: p.in.bytes.Load()}
		if t.exclusive == p {
			ps.AccessMode = "Exclusive"
		}
		ps.MsgRateIn, ps.ThroughputIn = p.in.rates(now)
		st.MsgRateIn += ps.MsgRateIn
		st.ThroughputIn += ps.ThroughputIn
		st.Publishers = append(st.Publishers, ps)
	}
	t.mu.Unlock()
	sort.Slice(st.Publishers, func(i, j int) bool { return st.Publishers[i].Name < st.Publishers[j].Name })
	last := int64(-1)
	if t.ledger != nil {
		last = t.ledger.LastEntryID()
	}
	for _, s := range t.subscriptions() {
		ss := s.stats(now)
		if t.ledger != nil && s.durable {
			ss.Backlog, _ = s.backlog(last)
		}
		st.MsgOut += ss.MsgOut
		st.BytesOut += ss.BytesOut
		st.MsgRateOut += ss.MsgRateOut
		st.ThroughputOut += ss.ThroughputOut
		st.Subscriptions[s.name] = ss
	}
	return st, nil
}

// stats reads a subscription's state, without its backlog.
func (s *Subscription) stats(now time.Time) SubscriptionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := SubscriptionStats{
		Type:     s.subType.String(),
		Durable:  s.durable,
		MsgOut:   s.out.msgs.Load(),
		BytesOut: s.out.bytes.Load(),
	}
	ss.MsgRateOut, ss.ThroughputOut = s.out.rates(now)
	if s.cursor != nil {
		ss.AckedRanges = s.cursor.RangeCount()
		if len(s.cursor.Properties) > 0 {
			ss.Properties = make(map[string]string, len(s.cursor.Properties))
			for k, v := range s.cursor.Properties {
				ss.Properties[k] = v
			}
		}
	}
	if s.delays != nil {
		ss.Delayed = int64(s.delays.len())
	}
	unacked := map[*Consumer]int{}
	for _, pe := range s.pending {
		unacked[pe.consumer] += pe.messages
		ss.Unacked += int64(pe.messages)
	}
	if s.disp == nil {
		return ss
	}
	switch d := s.disp.(type) {
	case *failoverDispatcher:
		if d.active != nil {
			ss.ActiveConsumer = d.active.name
		}
	case *exclusiveDispatcher:
		if d.c != nil {
			ss.ActiveConsumer = d.c.name
		}
	}
	for _, c := range s.disp.consumers() {
		cs := ConsumerStats{ID: c.id, Name: c.name, Address: remoteAddr(c.cn), Permits: c.permits,
			ClientVersion: c.client.version, Metadata: c.client.metadata, ConnectedSince: c.client.connectedSince,
			Unacked: unacked[c], Priority: c.priority, MsgOut: c.out.msgs.Load(), BytesOut: c.out.bytes.Load()}
		cs.MsgRateOut, cs.ThroughputOut = c.out.rates(now)
		ss.Consumers = append(ss.Consumers, cs)
	}
	return ss
}

func remoteAddr(c *conn) string {
	if c == nil || c.nc == nil {
		return ""
	}
	// Pulsar shows Java's InetSocketAddress form, "/ip:port".
	return "/" + c.nc.RemoteAddr().String()
}

// TopicInternalStats returns the ledger and cursor state of a persistent topic.
func (b *Broker) TopicInternalStats(ctx context.Context, name naming.Topic) (InternalStats, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return InternalStats{}, err
	}
	l := t.ledger
	st := InternalStats{
		LedgerID:     t.ledgerID,
		FirstEntryID: l.FirstEntryID(),
		LastEntryID:  l.LastEntryID(),
		Entries:      l.Entries(),
		Size:         l.Size(),
		Terminated:   t.terminated.Load(),
		Cursors:      map[string]CursorStats{},
		Compaction:   t.compactionStats(),
	}
	if d, ok := l.(ledger.DamageReporter); ok {
		st.LostEntries = d.LostEntries()
	}
	for _, s := range t.subscriptions() {
		cs := s.cursorStats(st.LastEntryID)
		if s.durable {
			cs.Backlog, _ = s.backlog(st.LastEntryID)
		}
		st.Cursors[s.name] = cs
	}
	return st, nil
}

func (s *Subscription) cursorStats(last int64) CursorStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := CursorStats{Durable: s.durable, ReadPos: s.readPos, MsgOut: s.out.msgs.Load(), MarkDelete: -1}
	if c := s.cursor; c != nil {
		cs.MarkDelete = c.MarkDelete
		cs.RangeCount = c.RangeCount()
		cs.AckedRanges = ackedRanges(c, min(c.HighestAcked(), last), maxRangeScan)
	}
	return cs
}

// ackedRanges lists the acknowledged ranges after the mark-delete position
// up to id upTo, examining at most scan ids. The cursor exposes ranges only
// through point queries, hence the scan; NextUnacked skips acked runs at once.
func ackedRanges(c *ledger.CursorState, upTo int64, scan int) [][2]int64 {
	if c.RangeCount() == 0 {
		return nil
	}
	var out [][2]int64
	id := c.MarkDelete + 1
	for id <= upTo && scan > 0 && len(out) < c.RangeCount() {
		if !c.IsAcked(id) {
			id++
			scan--
			continue
		}
		next := c.NextUnacked(id)
		out = append(out, [2]int64{id, next - 1})
		id = next
	}
	return out
}

// LastMessageID returns the id of a topic's last stored message (entry -1
// when none), with the batch index of the last message of a batch.
func (b *Broker) LastMessageID(ctx context.Context, name naming.Topic) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	id := MessageID{LedgerID: t.ledgerID, EntryID: t.ledger.LastEntryID(), Partition: name.PartitionIndex(), BatchIndex: -1}
	if id.EntryID >= 0 {
		if es, err := t.ledger.Read(ctx, id.EntryID, 1, 0); err == nil && len(es) == 1 {
			if md, ok := entryMetadata(es[0].Data); ok && md.HasNumMessagesInBatch {
				id.BatchIndex = md.NumMessagesInBatch - 1
			}
		}
	}
	return id, nil
}

// MessageIDByTimestamp returns the first message published at or after ts
// (unix milliseconds); ErrMessageNotFound when every message is older.
func (b *Broker) MessageIDByTimestamp(ctx context.Context, name naming.Topic, ts int64) (MessageID, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return MessageID{}, err
	}
	id, err := findByPublishTime(ctx, t.ledger, uint64(max(ts, 0)))
	if err != nil {
		return MessageID{}, fmt.Errorf("search %s by publish time: %w", name, err)
	}
	if id > t.ledger.LastEntryID() {
		return MessageID{}, fmt.Errorf("%w: no message of %s was published at or after %d", ErrMessageNotFound, name, ts)
	}
	return MessageID{LedgerID: t.ledgerID, EntryID: id, Partition: name.PartitionIndex(), BatchIndex: -1}, nil
}

// ReadMessage returns the entry at ledgerID:entryID.
func (b *Broker) ReadMessage(ctx context.Context, name naming.Topic, ledgerID, entryID int64) (Message, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return Message{}, err
	}
	if ledgerID != t.ledgerID {
		return Message{}, fmt.Errorf("%w: %s has no ledger %d", ErrMessageNotFound, name, ledgerID)
	}
	return readEntry(ctx, t, entryID)
}

func readEntry(ctx context.Context, t *Topic, id int64) (Message, error) {
	notFound := fmt.Errorf("%w: entry %d:%d of %s", ErrMessageNotFound, t.ledgerID, id, t.fullName)
	if id < 0 || id > t.ledger.LastEntryID() {
		return Message{}, notFound
	}
	es, err := t.ledger.Read(ctx, id, 1, 0)
	if errors.Is(err, ledger.ErrTrimmed) || err == nil && (len(es) == 0 || es[0].ID != id) {
		return Message{}, notFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("read %d:%d of %s: %w", t.ledgerID, id, t.fullName, err)
	}
	return Message{ID: MessageID{LedgerID: t.ledgerID, EntryID: id, Partition: t.name.PartitionIndex(), BatchIndex: -1},
		Data: es[0].Data}, nil
}

// Subscriptions lists a topic's subscriptions, sorted.
func (b *Broker) Subscriptions(ctx context.Context, name naming.Topic) ([]string, error) {
	t, err := b.existingTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range t.subscriptions() {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out, nil
}

// subscription returns a subscription of a persistent topic.
func (b *Broker) subscription(ctx context.Context, name naming.Topic, sub string) (*Subscription, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	s := t.subs[sub]
	t.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %s on %s", ErrSubscriptionNotFound, sub, name)
	}
	return s, nil
}

// positionOf maps a message id to the first entry to deliver from it: as a
// seek does, ids of older ledgers (and Earliest) mean the first entry, of
// newer ones (and Latest) the end. exclusive starts after the entry itself.
func positionOf(t *Topic, id MessageID, exclusive bool) int64 {
	var next int64
	switch {
	case id.LedgerID < t.ledgerID || id.LedgerID < 0:
		return t.ledger.FirstEntryID()
	case id.LedgerID > t.ledgerID || id.EntryID == math.MaxInt64:
		return t.ledger.LastEntryID() + 1
	default:
		next = max(id.EntryID, t.ledger.FirstEntryID())
	}
	if exclusive && next == id.EntryID {
		next++
	}
	return min(next, t.ledger.LastEntryID()+1)
}

// CreateSubscription creates a durable subscription whose first message is
// the one at id (Latest: the next one published). A missing topic is
// created, as a consumer would, unless the namespace forbids auto topic
// creation (ErrTopicNotFound). ErrSubscriptionExists when it exists.
func (b *Broker) CreateSubscription(ctx context.Context, name naming.Topic, sub string, id MessageID) error {
	if !name.IsPersistent() {
		return fmt.Errorf("%w on non-persistent topic %s", ErrNotAllowed, name)
	}
	// Creating a subscription creates its topic only where topics are
	// created implicitly, as in Pulsar.
	if ok, err := b.mayUse(ctx, name); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, autoCreateRefusal(name))
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return err
	}
	created := false
	s, err := t.getOrCreateSubscription(sub, func() *Subscription {
		created = true
		return newSubscription(t, sub, true, ledger.NewCursorState(positionOf(t, id, false)-1))
	})
	if err != nil {
		return err
	}
	if !created {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionExists, sub, name)
	}
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	s.saveCursor()
	return nil
}

// DeleteSubscription deletes a subscription and its cursor. Without force it
// refuses (ErrSubscriptionBusy) while consumers are connected; with force
// they are closed (a client that subscribes again creates it anew).
func (b *Broker) DeleteSubscription(ctx context.Context, name naming.Topic, sub string, force bool) error {
	t, err := b.existingTopic(ctx, name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	s := t.subs[sub]
	t.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionNotFound, sub, name)
	}
	s.mu.Lock()
	busy := s.disp != nil && len(s.disp.consumers()) > 0
	s.mu.Unlock()
	if busy && !force {
		return fmt.Errorf("%w: %s on %s", ErrSubscriptionBusy, sub, name)
	}
	// Removed (stopped, its cursor and delayed index deleted) first, so no
	// consumer can attach any more; then the ones attached are detached and told.
	t.removeSubscription(s)
	s.mu.Lock()
	var consumers []*Consumer
	if s.disp != nil {
		consumers = append(consumers, s.disp.consumers()...)
		for _, c := range consumers {
			s.disp.remove(c)
		}
	}
	s.mu.Unlock()
	b.metrics.consumers.Sub(float64(len(consumers)))
	for _, c := range consumers {
		c.closeByBroker()
	}
	return nil
}

// SkipMessages acknowledges the next n unacknowledged entries of a subscription.
func (b *Broker) SkipMessages(ctx context.Context, name naming.Topic, sub string, n int64) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	l := s.topic.ledger
	first, last := l.FirstEntryID(), l.LastEntryID()
	s.mu.Lock()
	id := s.cursor.NextUnacked(max(s.cursor.MarkDelete+1, first))
	for ; n > 0 && id <= last; n-- {
		s.cursor.Ack(id)
		s.forget(id)
		s.removeReplay(id)
		id = s.cursor.NextUnacked(id + 1)
	}
	s.dirty = true
	s.mu.Unlock()
	s.signal()
	return nil
}

// ClearBacklog acknowledges every entry stored so far.
func (b *Broker) ClearBacklog(ctx context.Context, name naming.Topic, sub string) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	s.ackBefore(s.topic.ledger.LastEntryID() + 1)
	s.signal()
	return nil
}

// ExpireMessages acknowledges the entries published more than age ago.
func (b *Broker) ExpireMessages(ctx context.Context, name naming.Topic, sub string, age time.Duration) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	first, err := findByPublishTime(ctx, s.topic.ledger, uint64(max(time.Now().Add(-age).UnixMilli(), 0)))
	if err != nil {
		return fmt.Errorf("search %s by publish time: %w", name, err)
	}
	s.ackBefore(first)
	s.signal()
	return nil
}

// ResetCursor moves a subscription so that the message at id is the next
// delivered (the one after it when exclusive). Its consumers are closed and
// subscribe again from there, as after a seek.
func (b *Broker) ResetCursor(ctx context.Context, name naming.Topic, sub string, id MessageID, exclusive bool) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	b.resetTo(s, positionOf(s.topic, id, exclusive))
	return nil
}

// ResetCursorToTime moves a subscription to the first message published at
// or after ts (unix milliseconds).
func (b *Broker) ResetCursorToTime(ctx context.Context, name naming.Topic, sub string, ts int64) error {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return err
	}
	next, err := findByPublishTime(ctx, s.topic.ledger, uint64(max(ts, 0)))
	if err != nil {
		return fmt.Errorf("search %s by publish time: %w", name, err)
	}
	b.resetTo(s, next)
	return nil
}

func (b *Broker) resetTo(s *Subscription, next int64) {
	for _, c := range s.resetCursor(next) {
		c.closeByBroker()
	}
}

// PeekMessage returns the n-th (from 1) unacknowledged entry of a
// subscription without changing it.
func (b *Broker) PeekMessage(ctx context.Context, name naming.Topic, sub string, n int64) (Message, error) {
	s, err := b.subscription(ctx, name, sub)
	if err != nil {
		return Message{}, err
	}
	l := s.topic.ledger
	first, last := l.FirstEntryID(), l.LastEntryID()
	n = max(n, 1)
	s.mu.Lock()
	c := s.cursor
	id := c.NextUnacked(max(c.MarkDelete+1, first))
	switch {
	case id > last:
	case c.RangeCount() == 0:
		id += min(n-1, last-id+1) // nothing is acked after id: no need to walk
	default:
		for i := int64(1); i < n && id <= last; i++ {
			id = c.NextUnacked(id + 1)
		}
	}
	s.mu.Unlock()
	if id > last {
		return Message{}, fmt.Errorf("%w: %s on %s has fewer than %d unacknowledged entries", ErrMessageNotFound, sub, name, n)
	}
	return readEntry(ctx, s.topic, id)
}
