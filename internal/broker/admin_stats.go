package broker

// Statistics for the admin API: a topic's stats (rates, producers,
// subscriptions, consumers) and internal stats (ledger and cursors).

import (
	"context"
	"github.com/messagebus/messagebus/internal/geo"
	"sort"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
)

// maxRangeScan bounds the entries examined to list a cursor's acknowledged
// ranges in internal stats; the count of ranges is always exact.
const maxRangeScan = 1 << 20

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
	LoadedAt         time.Time // when this broker loaded the topic
	LastPublish      int64     // unix millis of the last publish, 0: none
	Publishers       []PublisherStats
	Subscriptions    map[string]SubscriptionStats
	Compaction       CompactionStats // compaction.go
	// Replication is the state of the topic's replicators by remote cluster.
	Replication map[string]geo.Stats
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
	// BlockedOnUnacked: dispatch paused at maxUnackedMessagesPerSubscription.
	BlockedOnUnacked bool
	Properties       map[string]string
	Consumers        []ConsumerStats
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
	// BlockedOnUnacked: dispatch to it paused at maxUnackedMessagesPerConsumer.
	BlockedOnUnacked bool
	Priority         int32
	MsgOut           int64
	BytesOut         int64
	MsgRateOut       float64
	ThroughputOut    float64
	LastFlow         int64 // unix millis of the last FLOW
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
	// OffloadedEntries and OffloadedSize are the entries (and their
	// bytes) held in the object store (tiered storage).
	OffloadedEntries int64
	OffloadedSize    int64
	Terminated       bool
	Cursors          map[string]CursorStats
	Compaction       CompactionStats // compaction.go
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
		LoadedAt:      t.loadedAt,
		LastPublish:   t.lastPublish.Load(),
		Subscriptions: map[string]SubscriptionStats{},
	}
	if t.ledger != nil {
		st.StorageSize = t.ledger.Size()
		st.Entries = t.ledger.Entries()
		st.OffloadedSize = offloadedSize(t.ledger)
		st.Compaction = t.compactionStats()
		st.Replication = t.replicationStats(now)
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
	ss.BlockedOnUnacked = s.unackedBlocked
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
			Unacked: unacked[c], BlockedOnUnacked: c.unackedBlocked, Priority: c.priority, MsgOut: c.out.msgs.Load(), BytesOut: c.out.bytes.Load(), LastFlow: c.lastFlow.Load()}
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
	if o, ok := l.(ledger.Offloader); ok {
		st.OffloadedEntries, st.OffloadedSize = o.OffloadedEntries(), o.OffloadedSize()
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
