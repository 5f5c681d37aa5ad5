package broker

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
)

// Replicated subscriptions by markers, Pulsar's protocol (PIP-33;
// ReplicatedSubscriptionsController and its snapshot builder and cache):
//
//  1. Every snapshot interval (--replicated-subscriptions-snapshot-frequency-millis)
//     a topic that replicates, has a replicated subscription, whose links
//     are all connected and that stored a message since the last completed
//     snapshot began writes a SNAPSHOT_REQUEST marker (replicated to every
//     remote).
//  2. A cluster storing a replicated request answers with a
//     SNAPSHOT_RESPONSE marker (replicate_to: the requester) holding its
//     last entry's position: every entry the requester wrote before the
//     request is at or before it there.
//  3. When every remote answered (twice with more than one remote, so that
//     entries exchanged between remotes are covered), the requester writes
//     a SNAPSHOT marker (local only): local position = where the last
//     response was stored here; everything the remotes had up to their
//     answered positions is here before it.
//  4. A replicated subscription's dispatch, passing a snapshot marker, keeps
//     it (the last 10 per subscription). Once its mark-delete reaches a
//     snapshot's local position, an UPDATE marker (replicated to every
//     remote) carries the remotes' positions of that snapshot.
//  5. A cluster storing a replicated update moves the subscription of that
//     name to its own position in it (a cumulative ack), creating it first
//     when missing.
//
// Markers are processed when stored (a replicated one after its append), not
// when a replicator reads them as Pulsar does; the effect is the same.

// Pulsar's defaults: replicatedSubscriptionsSnapshotTimeoutSeconds and
// replicatedSubscriptionsSnapshotMaxCachedPerSubscription.
const (
	snapshotTimeout         = 30 * time.Second
	snapshotsCachedPerSub   = 10
	maxPendingSnapshots     = 64
	defaultSnapshotInterval = time.Second
)

type snapshotBuilder struct {
	id        string
	start     time.Time
	remotes   []string
	missing   map[string]bool
	responses map[string]wire.MarkerPosition
	twoRounds bool
	firstDone bool
	finishing bool
}

type cachedSnapshot struct {
	local    int64 // entry id here
	clusters []wire.ClusterPosition
}

type rsnapState struct {
	mu      sync.Mutex
	pending map[string]*snapshotBuilder
	// lastCompletedStart is when the last completed snapshot began: no new
	// snapshot while no message was stored since.
	lastCompletedStart time.Time
	caches             map[string][]cachedSnapshot // by replicated subscription
	lastData           time.Time                   // last message (not marker) stored
}

func newSnapshotID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" +
		hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// dataStored notes that a message (not a marker) was stored.
func (t *Topic) dataStored() {
	st := &t.snapshots
	st.mu.Lock()
	st.lastData = time.Now()
	st.mu.Unlock()
}

// hasReplicatedSubscription reports whether t has one.
func (t *Topic) hasReplicatedSubscription() bool {
	t.replSubs.mu.Lock()
	defer t.replSubs.mu.Unlock()
	return len(t.replSubs.m) > 0
}

// snapshotTick runs every snapshot interval: it sends the updates of
// subscriptions whose mark-delete passed a snapshot, drops timed-out
// snapshots and starts a new one when there is something to snapshot.
func (t *Topic) snapshotTick() {
	if t.ledger == nil || t.b.cfg.DisableReplicatedSubscriptions {
		return
	}
	t.sendSubscriptionUpdates()
	reps := t.replicators()
	now := time.Now()
	st := &t.snapshots
	st.mu.Lock()
	for id, sb := range st.pending {
		if now.Sub(sb.start) > snapshotTimeout {
			delete(st.pending, id)
			t.b.metrics.markers.snapshotsTimeout.Inc()
		}
	}
	idle := st.lastData.Before(st.lastCompletedStart) || st.lastData.IsZero()
	full := len(st.pending) >= maxPendingSnapshots
	st.mu.Unlock()
	if len(reps) == 0 || idle || full || !t.hasReplicatedSubscription() {
		return
	}
	remotes := make([]string, 0, len(reps))
	for _, rep := range reps {
		if !rep.Stats(now).Connected {
			return // not while a cluster is unreachable, as Pulsar
		}
		remotes = append(remotes, rep.remote)
	}
	sb := &snapshotBuilder{id: newSnapshotID(), start: now, remotes: remotes, missing: map[string]bool{},
		responses: map[string]wire.MarkerPosition{}, twoRounds: len(remotes) > 1}
	for _, r := range remotes {
		sb.missing[r] = true
	}
	st.mu.Lock()
	if st.pending == nil {
		st.pending = map[string]*snapshotBuilder{}
	}
	st.pending[sb.id] = sb
	st.mu.Unlock()
	t.b.metrics.markers.snapshotsStarted.Inc()
	t.b.log.Debug("replicated subscriptions snapshot started", "topic", t.fullName, "snapshot", sb.id, "remotes", remotes)
	t.writeMarker(wire.MarkerSnapshotRequest, nil,
		wire.SnapshotRequest{SnapshotID: sb.id, SourceCluster: t.b.cfg.ClusterName}.Marshal(), nil)
}

// replicatedMarkerStored handles a replicated marker once stored at id.
func (t *Topic) replicatedMarkerStored(id int64, hp []byte) {
	t.markers.add(id)
	meta, payload, err := wire.SplitPayload(hp)
	var md wire.MetadataInfo
	if err == nil {
		err = wire.ParseMetadata(meta, &md)
	}
	if err != nil || t.b.cfg.DisableReplicatedSubscriptions {
		return
	}
	switch md.MarkerType {
	case wire.MarkerSnapshotRequest:
		req, err := wire.ParseSnapshotRequest(payload)
		t.b.log.Debug("snapshot request", "topic", t.fullName, "snapshot", req.SnapshotID, "from", req.SourceCluster, "entry", id)
		if err != nil || req.SourceCluster == "" {
			t.b.log.Warn("bad snapshot request marker", "topic", t.fullName, "entry", id, "err", err)
			return
		}
		// Our last entry: the request itself or later, so every entry
		// the requester wrote before it is here before this position.
		last := t.ledger.LastEntryID()
		t.writeMarker(wire.MarkerSnapshotResponse, []string{req.SourceCluster}, wire.SnapshotResponse{
			SnapshotID: req.SnapshotID, HasCluster: true,
			Cluster: wire.ClusterPosition{Cluster: t.b.cfg.ClusterName, Pos: wire.MarkerPosition{LedgerID: uint64(t.ledgerID), EntryID: uint64(max(last, 0))}},
		}.Marshal(), nil)
	case wire.MarkerSnapshotResponse:
		resp, err := wire.ParseSnapshotResponse(payload)
		if err != nil || !resp.HasCluster {
			t.b.log.Warn("bad snapshot response marker", "topic", t.fullName, "entry", id, "err", err)
			return
		}
		t.snapshotResponse(id, resp)
	case wire.MarkerUpdate:
		up, err := wire.ParseSubscriptionUpdate(payload)
		if err != nil {
			t.b.log.Warn("bad subscription update marker", "topic", t.fullName, "entry", id, "err", err)
			return
		}
		t.applySubscriptionUpdate(up)
	}
}

// snapshotResponse records a remote's answer, stored here at id; the last
// answer completes the snapshot.
func (t *Topic) snapshotResponse(id int64, resp wire.SnapshotResponse) {
	st := &t.snapshots
	st.mu.Lock()
	sb := st.pending[resp.SnapshotID]
	t.b.log.Debug("snapshot response", "topic", t.fullName, "snapshot", resp.SnapshotID, "cluster", resp.Cluster.Cluster, "entry", id, "pending", sb != nil)
	if sb == nil || sb.finishing {
		st.mu.Unlock()
		return // timed out, or not ours
	}
	if _, ok := sb.responses[resp.Cluster.Cluster]; !ok {
		sb.responses[resp.Cluster.Cluster] = resp.Cluster.Pos
	}
	delete(sb.missing, resp.Cluster.Cluster)
	if len(sb.missing) > 0 {
		st.mu.Unlock()
		return
	}
	if sb.twoRounds && !sb.firstDone {
		sb.firstDone = true
		for _, r := range sb.remotes {
			sb.missing[r] = true
		}
		st.mu.Unlock()
		t.writeMarker(wire.MarkerSnapshotRequest, nil,
			wire.SnapshotRequest{SnapshotID: sb.id, SourceCluster: t.b.cfg.ClusterName}.Marshal(), nil)
		return
	}
	sb.finishing = true
	snap := wire.Snapshot{SnapshotID: sb.id, HasLocal: true, Local: wire.MarkerPosition{LedgerID: uint64(t.ledgerID), EntryID: uint64(id)}}
	names := make([]string, 0, len(sb.responses))
	for c := range sb.responses {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		snap.Clusters = append(snap.Clusters, wire.ClusterPosition{Cluster: c, Pos: sb.responses[c]})
	}
	st.mu.Unlock()
	t.writeMarker(wire.MarkerSnapshot, []string{t.b.cfg.ClusterName}, snap.Marshal(), func(_ int64, err error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if err != nil {
			sb.finishing = false
			return
		}
		delete(st.pending, sb.id)
		st.lastCompletedStart = sb.start
		t.b.metrics.markers.snapshotsDone.Inc()
		t.b.log.Debug("replicated subscriptions snapshot completed", "topic", t.fullName, "snapshot", sb.id, "local", id)
		t.b.metrics.markers.snapshotDuration.Observe(time.Since(sb.start).Seconds())
	})
}

// snapshotRead keeps a snapshot a replicated subscription's dispatch passed.
func (t *Topic) snapshotRead(sub string, snap wire.Snapshot) {
	if !t.isReplicatedSubscription(sub) || snap.Local.LedgerID != uint64(t.ledgerID) {
		return
	}
	c := cachedSnapshot{local: int64(snap.Local.EntryID), clusters: snap.Clusters}
	st := &t.snapshots
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.caches == nil {
		st.caches = map[string][]cachedSnapshot{}
	}
	st.caches[sub] = addSnapshot(st.caches[sub], c, snapshotsCachedPerSub)
}

// addSnapshot appends c to a subscription's snapshots (oldest first). A
// snapshot at or below the last one means the subscription went back
// (reset): the cache starts over. Past max entries, the one whose removal
// leaves the smallest gap (in entries) between its neighbours goes, never
// the first or the last, as Pulsar's cache does.
func addSnapshot(cache []cachedSnapshot, c cachedSnapshot, maxN int) []cachedSnapshot {
	if n := len(cache); n > 0 {
		if c.local == cache[n-1].local {
			return cache
		}
		if c.local < cache[n-1].local {
			cache = cache[:0]
		}
	}
	cache = append(cache, c)
	if len(cache) > maxN {
		best, gap := 1, int64(-1)
		for i := 1; i < len(cache)-1; i++ {
			if g := cache[i+1].local - cache[i-1].local; gap < 0 || g < gap {
				best, gap = i, g
			}
		}
		cache = append(cache[:best], cache[best+1:]...)
	}
	return cache
}

// advanceSnapshots returns the last snapshot at or below md and drops it
// and the ones before it; ok is false when there is none.
func advanceSnapshots(cache []cachedSnapshot, md int64) (rest []cachedSnapshot, snap cachedSnapshot, ok bool) {
	i := 0
	for i < len(cache) && cache[i].local <= md {
		snap, ok = cache[i], true
		i++
	}
	return cache[i:], snap, ok
}

func (t *Topic) isReplicatedSubscription(name string) bool {
	t.replSubs.mu.Lock()
	defer t.replSubs.mu.Unlock()
	return t.replSubs.m[name] != nil
}

// sendSubscriptionUpdates writes an UPDATE marker for each replicated
// subscription whose mark-delete reached one of its snapshots.
func (t *Topic) sendSubscriptionUpdates() {
	st := &t.snapshots
	st.mu.Lock()
	names := make([]string, 0, len(st.caches))
	for name := range st.caches {
		names = append(names, name)
	}
	st.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		t.mu.Lock()
		s := t.subs[name]
		t.mu.Unlock()
		if s == nil || !t.isReplicatedSubscription(name) {
			st.mu.Lock()
			delete(st.caches, name)
			st.mu.Unlock()
			continue
		}
		md := s.markDelete()
		st.mu.Lock()
		rest, snap, ok := advanceSnapshots(st.caches[name], md)
		st.caches[name] = rest
		st.mu.Unlock()
		if !ok || len(snap.clusters) == 0 {
			continue
		}
		t.b.metrics.markers.updatesSent.Inc()
		t.writeMarker(wire.MarkerUpdate, nil, wire.SubscriptionUpdate{Subscription: name, Clusters: snap.clusters}.Marshal(), nil)
	}
}

// applySubscriptionUpdate moves the named subscription to this cluster's
// position in the update (never back), creating it (durable, replicated,
// at the earliest entry) when missing.
func (t *Topic) applySubscriptionUpdate(up wire.SubscriptionUpdate) {
	var pos *wire.MarkerPosition
	for i := range up.Clusters {
		if up.Clusters[i].Cluster == t.b.cfg.ClusterName {
			pos = &up.Clusters[i].Pos
		}
	}
	if pos == nil || up.Subscription == "" || isInternalCursor(up.Subscription) || isReplicationCursor(up.Subscription) {
		return
	}
	if pos.LedgerID != uint64(t.ledgerID) {
		t.b.log.Warn("replicated subscription update for another ledger ignored", "topic", t.fullName,
			"subscription", up.Subscription, "ledger", pos.LedgerID, "ours", t.ledgerID)
		return
	}
	created := false
	s, err := t.getOrCreateSubscription(up.Subscription, 0, func() *Subscription {
		created = true
		return newSubscription(t, up.Subscription, true, ledger.NewCursorState(t.ledger.FirstEntryID()-1))
	})
	if err != nil {
		return
	}
	if created {
		t.b.log.Info("subscription created by a replicated subscription update", "topic", t.fullName, "subscription", up.Subscription)
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
	}
	t.markReplicated(s)
	to := min(int64(pos.EntryID), t.ledger.LastEntryID())
	if to > s.markDelete() {
		s.ackBefore(to + 1)
		t.b.metrics.markers.updatesApplied.Inc()
	}
	s.saveCursor()
	s.signal()
}
