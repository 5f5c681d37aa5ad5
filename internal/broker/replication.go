package broker

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
)

// Geo-replication's sending side: a loaded persistent topic whose effective
// replication clusters (topic-level, else the namespace's) name clusters
// other than this one runs a Replicator (Config.StartReplicator) per remote
// cluster, reading from the durable cursor pulsar.repl.<remote>. A new cursor starts
// at the end of the topic (as Pulsar's): what was written before
// replication was enabled is not sent. Removing a cluster stops its
// replicator and deletes its cursor. Replicators run while the topic is
// loaded; a broker loads a topic when a client or a remote replicator uses
// it, and at start every topic that has a replication cursor
// (resumeReplication).
//
// Lock order: topicReplication.mu is a leaf; never held while a
// replicator stops.

// remoteReplicator is a running replicator and its remote cluster.
type remoteReplicator struct {
	Replicator
	remote string
}

type topicReplication struct {
	mu       sync.Mutex
	byRemote map[string]remoteReplicator
	// clusters are the topic's effective replication clusters, the local
	// one included: replicated sends are accepted from these only.
	clusters []string
	stopped  bool
}

func isReplicationCursor(name string) bool { return strings.HasPrefix(name, geo.CursorPrefix) }

// syncReplication starts and stops t's replicators to match its policies.
// A failure to read the policies leaves things as they are; the next
// policy change or check retries.
func (t *Topic) syncReplication() {
	if t.ledger == nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.b.ctx, t.b.cfg.OperationTimeout)
	p, err := t.b.EffectivePolicies(ctx, t.name)
	cancel()
	if err != nil {
		t.b.metadataError("policies", err)
		return
	}
	local := t.b.cfg.ClusterName
	want := map[string]bool{}
	if replicatesBeyond(p.ReplicationClusters, local) {
		for _, c := range p.ReplicationClusters {
			if c != local {
				want[c] = true
			}
		}
	}
	if len(want) > 0 && t.replDedup == nil {
		// The receiving side's deduplication state is built at load:
		// reload the topic to have it (its clients reconnect at once).
		// Not from this goroutine, which may be the topic's load.
		go func() {
			if err := t.b.UnloadTopic(t.fullName); err != nil {
				t.b.log.Error("reload topic for replication", "topic", t.fullName, "err", err)
			}
		}()
		return
	}
	partitions := 0
	if len(want) > 0 && t.name.PartitionIndex() >= 0 {
		ctx, cancel := context.WithTimeout(t.b.ctx, t.b.cfg.OperationTimeout)
		partitions, err = t.b.meta.PartitionedTopic(ctx, t.name.Partitioned())
		cancel()
		if err != nil {
			t.b.metadataError("partitioned topic", err)
			return
		}
	}
	r := &t.repl
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.clusters = slices.Clone(p.ReplicationClusters)
	var stop []remoteReplicator
	for remote, rep := range r.byRemote {
		if !want[remote] {
			stop = append(stop, rep)
			delete(r.byRemote, remote)
		}
	}
	for remote := range want {
		if _, ok := r.byRemote[remote]; !ok && t.b.cfg.StartReplicator != nil {
			if r.byRemote == nil {
				r.byRemote = map[string]remoteReplicator{}
			}
			r.byRemote[remote] = remoteReplicator{t.startReplicator(remote, partitions), remote}
		}
	}
	r.mu.Unlock()
	for _, rep := range stop {
		rep.Stop()
		if err := t.ledger.DeleteCursor(geo.CursorPrefix + rep.remote); err != nil {
			t.b.log.Error("delete replication cursor", "topic", t.fullName, "remote_cluster", rep.remote, "err", err)
		}
		t.b.log.Info("replication stopped: cluster removed from the topic's replication clusters", "topic", t.fullName, "remote_cluster", rep.remote)
	}
}

// startReplicator starts the replicator to remote from its cursor, which
// is created at the end of the topic when missing. partitions is the
// partition count of the partitioned topic t belongs to (0: none).
func (t *Topic) startReplicator(remote string, partitions int) Replicator {
	cursor := geo.CursorPrefix + remote
	start := t.ledger.LastEntryID()
	if st := t.ledger.Cursors()[cursor]; st != nil {
		start = st.MarkDelete
	} else if err := t.ledger.SaveCursor(cursor, ledger.NewCursorState(start)); err != nil {
		t.b.log.Error("create replication cursor", "topic", t.fullName, "remote_cluster", remote, "err", err)
	} else if cs, ok := t.ledger.(ledger.CursorSyncer); ok {
		// Durable now: a cursor lost to a crash would be created again at
		// the end of the topic, past what was written meanwhile.
		if err := cs.SyncCursors(); err != nil {
			t.b.log.Error("persist replication cursor", "topic", t.fullName, "remote_cluster", remote, "err", err)
		}
	}
	b := t.b
	base := ""
	if partitions > 0 {
		base = t.name.Partitioned().String()
	}
	return b.cfg.StartReplicator(ReplicationSource{
		Topic:            t.fullName,
		LocalCluster:     b.cfg.ClusterName,
		RemoteCluster:    remote,
		LedgerID:         t.ledgerID,
		Entries:          t.ledger,
		Start:            start,
		Partitions:       partitions,
		PartitionedTopic: base,
		Save: func(md int64) {
			if err := t.ledger.SaveCursor(cursor, ledger.NewCursorState(md)); err != nil {
				b.log.Error("save replication cursor", "topic", t.fullName, "remote_cluster", remote, "err", err)
			}
		},
		Schema:  t.replicationSchema,
		OnError: func(error) { b.metrics.replicationErrors.WithLabelValues(remote).Inc() },
	})
}

// stopReplication stops every replicator of t (the topic closes).
func (t *Topic) stopReplication() {
	r := &t.repl
	r.mu.Lock()
	r.stopped = true
	reps := make([]remoteReplicator, 0, len(r.byRemote))
	for _, rep := range r.byRemote {
		reps = append(reps, rep)
	}
	r.byRemote = nil
	r.mu.Unlock()
	for _, rep := range reps {
		rep.Stop()
	}
}

// replicators lists t's replicators by remote cluster name.
func (t *Topic) replicators() []remoteReplicator {
	r := &t.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]remoteReplicator, 0, len(r.byRemote))
	for _, rep := range r.byRemote {
		out = append(out, rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].remote < out[j].remote })
	return out
}

// replicationClusters are the clusters t accepts replicated sends from.
func (t *Topic) replicationClusters() []string {
	t.repl.mu.Lock()
	defer t.repl.mu.Unlock()
	return t.repl.clusters
}

// replicationStats reads the replicators' stats by remote cluster.
func (t *Topic) replicationStats(now time.Time) map[string]geo.Stats {
	out := map[string]geo.Stats{}
	for _, rep := range t.replicators() {
		out[rep.remote] = rep.Stats(now)
	}
	return out
}

// syncAllReplication re-syncs the replicators of every loaded topic (a
// policy changed, or the periodic check).
func (b *Broker) syncAllReplication() {
	for _, t := range b.topicList() {
		if t.ledger != nil {
			t.syncReplication()
		}
	}
}

// resumeReplication loads, in the background, every stored topic that has
// a replication cursor, so that replication resumes after a restart
// without waiting for a client. In cluster mode it keeps doing so
// (replication_cluster.go): a topic moves to a new owner after its broker
// died even when no client uses it here.
func (b *Broker) resumeReplication() {
	defer b.bgWG.Done()
	if b.cfg.Ownership != nil {
		b.sweepReplicationLoop()
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	names, err := b.store.Topics(ctx)
	cancel()
	if err != nil {
		b.log.Warn("list topics to resume replication", "err", err)
		return
	}
	for _, full := range names {
		if b.ctx.Err() != nil || !b.resumeTopicReplication(full) {
			return
		}
	}
}

// resumeTopicReplication loads topic full when its policies replicate it;
// false once the broker shuts down.
func (b *Broker) resumeTopicReplication(full string) bool {
	name, err := naming.ParseTopic(full)
	if err != nil || !name.IsPersistent() {
		return true
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
	defer cancel()
	p, err := b.EffectivePolicies(ctx, name)
	if err != nil {
		b.log.Warn("read policies to resume replication", "topic", full, "err", err)
		return true
	}
	if !replicatesBeyond(p.ReplicationClusters, b.cfg.ClusterName) {
		return true
	}
	if _, err := b.getTopic(ctx, name); err != nil {
		if errors.Is(err, errShuttingDown) || b.ctx.Err() != nil {
			return false
		}
		b.log.Warn("load topic to resume replication", "topic", full, "err", err)
	}
	return true
}

// replicatesBeyond reports whether clusters names local and another one.
func replicatesBeyond(clusters []string, local string) bool {
	return len(clusters) > 1 && slices.Contains(clusters, local)
}
