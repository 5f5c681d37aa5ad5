package broker

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Topic is one loaded topic: its producers, its subscriptions and, when
// persistent, its ledger.
type Topic struct {
	b        *Broker
	name     naming.Topic
	fullName string
	ledger   ledger.Ledger // nil for non-persistent topics
	ledgerID int64
	// maxMessageSize is the topic's maxMessageSize policy in bytes (0: the
	// broker's limit only); limits.go keeps it current.
	maxMessageSize atomic.Int64
	// rates are the topic's throttles (throttle_policies.go).
	rates topicRates
	// delivery is the topic's delayed delivery policy (delivery.go).
	delivery topicDelivery

	mu        sync.Mutex
	producers map[string]*Producer // by producer name
	subs      map[string]*Subscription
	closed    bool
	// exclusive holds the topic for an Exclusive producer; waiting queues
	// WaitForExclusive producers; epoch counts exclusive acquisitions.
	exclusive *Producer
	waiting   []*Producer
	epoch     uint64

	dedup *dedupState // nil when deduplication is off
	// replDedup deduplicates replicated sends (replicated.go); nil unless
	// the topic replicates. repl holds its replicators (replication.go).
	replDedup *replDedupState
	repl      topicReplication
	replSubs  replicatedSubs // replicated_subs.go
	// markers indexes the topic's marker entries (markers.go); snapshots
	// is the replicated subscriptions' marker protocol (replicated_snapshots.go).
	markers   markerIndex
	snapshots rsnapState
	// quotaBlocked refuses producers while the backlog quota is exceeded.
	quotaBlocked error

	// nonPersistentSeq numbers messages of non-persistent topics; they get
	// message ids but are never stored.
	nonPersistentSeq atomic.Int64

	msgIn   atomic.Int64
	bytesIn atomic.Int64
	// terminated is set by TerminateTopic (admin_topics.go).
	terminated atomic.Bool
	// compaction is the compacted view and the compaction state (compaction.go).
	compaction topicCompaction
	// loadedAt is when this broker loaded the topic (its stats'
	// topicCreationTimeStamp); lastPublish the unix millis of the last SEND.
	loadedAt    time.Time
	lastPublish atomic.Int64
}

// newTopic opens a topic: its ledger, its durable subscriptions and its
// deduplication state. ctx bounds the ledger and metadata calls.
func newTopic(ctx context.Context, b *Broker, name naming.Topic) (*Topic, error) {
	t := &Topic{
		b:         b,
		name:      name,
		fullName:  name.String(),
		producers: map[string]*Producer{},
		subs:      map[string]*Subscription{},
		loadedAt:  time.Now(),
	}
	if !name.IsPersistent() {
		return t, nil
	}
	p, err := b.EffectivePolicies(ctx, name)
	if err != nil {
		return nil, b.metadataError("policies", err)
	}
	dedup := *p.DeduplicationEnabled
	t.repl.clusters = p.ReplicationClusters
	l, err := b.store.Open(ctx, t.fullName)
	if err != nil {
		return nil, fmt.Errorf("open ledger of %s: %w", t.fullName, err)
	}
	t.ledger = l
	t.ledgerID = l.ID()
	if o, ok := l.(ledger.Offloader); ok {
		// Deletions of offloaded data wait for the topic's deletion lag.
		if p, err := b.EffectivePolicies(ctx, name); err == nil {
			applyDeletionLag(o, p)
		}
	}
	// Durable subscriptions outlive their consumers: bring them back with their cursors.
	names := make([]string, 0)
	cursors := l.Cursors()
	for n := range cursors {
		names = append(names, n)
	}
	sort.Strings(names)
	t.terminated.Store(cursors[terminatedCursor] != nil)
	for _, n := range names {
		if isInternalCursor(n) || isReplicationCursor(n) {
			continue
		}
		t.subs[n] = newSubscription(t, n, true, cursors[n])
	}
	t.loadReplicatedSubs(cursors)
	t.markers.load(cursors[markersCursor])
	if err := t.loadCompaction(ctx, cursors[compactionCursor]); err != nil {
		l.Close()
		return nil, fmt.Errorf("load compacted view of %s: %w", t.fullName, err)
	}
	if dedup {
		d, err := recoverDedup(ctx, l, cursors[dedupCursor])
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("recover deduplication state of %s: %w", t.fullName, err)
		}
		t.dedup = d
	}
	if replicatesBeyond(p.ReplicationClusters, b.cfg.ClusterName) || cursors[replDedupCursor] != nil {
		d, err := openReplDedup(ctx, l, cursors[replDedupCursor])
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("recover replication deduplication state of %s: %w", t.fullName, err)
		}
		t.replDedup = d
	}
	return t, nil
}

// publish stores (or, for non-persistent topics, dispatches) one SEND and
// answers it with a receipt once durable. The caller did p.begin().
func (t *Topic) publish(p *Producer, sf *wire.SendFields, hp []byte, rs *replSource) {
	if t.refuseTerminated(p, sf) {
		return
	}
	marker := rs != nil && rs.marker
	if !marker { // a replicated marker is not a message (markers.go)
		n := int64(sf.NumMessages)
		p.in.add(int(n), len(hp))
		t.msgIn.Add(n)
		t.bytesIn.Add(int64(len(hp)))
		t.lastPublish.Store(time.Now().UnixMilli())
		t.b.metrics.msgIn.Add(float64(n))
		t.b.metrics.bytesIn.Add(float64(len(hp)))
	}
	t.b.activity.Touch()
	c := p.replies()
	if t.ledger == nil {
		id := t.nonPersistentSeq.Add(1) - 1
		t.dispatchNonPersistent(id, hp)
		c.sendReceipt(sf, 0, id)
		p.inflight.Done()
		return
	}
	seq := sf.SequenceID
	if sf.HasHighestSequenceID && sf.HighestSequenceID > seq {
		seq = sf.HighestSequenceID
	}
	if rs != nil {
		if t.refuseReplicated(p, sf, rs) {
			p.inflight.Done()
			return
		}
		switch t.replDedup.check(rs) {
		case dedupDuplicate:
			c.sendReceipt(sf, -1, -1)
			p.inflight.Done()
			return
		case dedupInFlight:
			c.sendError(*sf, pb.ServerError_UnknownError, "the entry of this source position is still being stored")
			p.inflight.Done()
			return
		}
	} else if t.dedup != nil {
		switch t.dedup.check(p.name, seq) {
		case dedupDuplicate:
			// Stored before: answer as Pulsar does, without storing it again.
			c.sendReceipt(sf, -1, -1)
			p.inflight.Done()
			return
		case dedupInFlight:
			c.sendError(*sf, pb.ServerError_UnknownError, "a message with this sequence id is still being stored")
			p.inflight.Done()
			return
		}
	}
	sfCopy := *sf
	c.appendStarted()
	start := time.Now()
	t.ledger.Append(hp, func(entryID int64, err error) {
		defer c.appendDone()
		defer p.inflight.Done()
		t.b.metrics.publishLatency.Observe(time.Since(start).Seconds())
		if rs != nil {
			t.replDedup.stored(rs, entryID, err)
		} else if t.dedup != nil {
			t.dedup.stored(p.name, seq, entryID, err)
		}
		if err != nil {
			t.b.appendFailed(t, c, &sfCopy, err)
			return
		}
		if marker {
			t.replicatedMarkerStored(entryID, hp)
		} else {
			t.dataStored()
		}
		c.sendReceipt(&sfCopy, t.ledgerID, entryID)
	})
}

// getOrCreateSubscription returns the named subscription, creating it with
// create when missing.
func (t *Topic) getOrCreateSubscription(name string, limit int, create func() *Subscription) (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errShuttingDown
	}
	if s, ok := t.subs[name]; ok {
		return s, nil
	}
	if limit > 0 && len(t.subs) >= limit {
		// Pulsar's NotAllowedException, word for word.
		return nil, newError(pb.ServerError_NotAllowedError, "Exceed the maximum number of subscriptions of the topic: "+t.fullName)
	}
	s := create()
	t.subs[name] = s
	return s, nil
}

// createInitialSubscription creates the durable subscription a producer
// names in initial_subscription_name (a dead-letter topic's, so that what
// is routed there is kept until someone reads it), at the earliest entry,
// as Pulsar does; an existing one is left as it is.
func (t *Topic) createInitialSubscription(name string) error {
	if t.ledger == nil || name == "" {
		return nil
	}
	created := false
	s, err := t.getOrCreateSubscription(name, 0, func() *Subscription {
		created = true
		return newSubscription(t, name, true, ledger.NewCursorState(t.ledger.FirstEntryID()-1))
	})
	if err != nil || !created {
		return err
	}
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	s.saveCursor()
	return nil
}

// removeSubscription forgets a subscription (unsubscribe, or the last reader left).
func (t *Topic) removeSubscription(s *Subscription) {
	t.mu.Lock()
	if t.subs[s.name] == s {
		delete(t.subs, s.name)
	}
	t.mu.Unlock()
	s.stop()
	s.mu.Lock()
	if s.delays != nil {
		if err := s.delays.drop(); err != nil {
			t.b.log.Error("drop delayed index", "topic", t.fullName, "subscription", s.name, "err", err)
		}
	}
	s.mu.Unlock()
	if s.durable && t.ledger != nil {
		if err := t.ledger.DeleteCursor(s.name); err != nil {
			t.b.log.Error("delete cursor", "topic", t.fullName, "subscription", s.name, "err", err)
		}
	}
}

func (t *Topic) subscriptions() []*Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		out = append(out, s)
	}
	return out
}

// saveCursors hands changed durable cursors to the ledger.
func (t *Topic) saveCursors() {
	if t.ledger == nil {
		return
	}
	for _, s := range t.subscriptions() {
		s.saveCursor()
	}
	t.saveDedup()
	t.saveReplDedup()
	t.saveMarkers()
}

// close stops the dispatchers, saves cursors and closes the ledger.
func (t *Topic) close() error {
	t.mu.Lock()
	t.closed = true
	subs := make([]*Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.stop()
		s.saveCursor()
	}
	t.b.metrics.topics.Dec()
	if t.ledger != nil {
		t.stopReplication()
		t.closeCompaction()
		t.saveDedup()
		t.saveReplDedup()
		t.saveMarkers()
		return t.ledger.Close()
	}
	return nil
}
