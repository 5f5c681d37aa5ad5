package broker

import (
	"context"
	"errors"
	"time"

	"github.com/messagebus/messagebus/internal/naming"
)

// Geo-replication in cluster mode. A topic's replicators run on the broker
// that owns its bundle, while the topic is loaded there; they move with the
// bundle (unload, failover) and the new owner resumes from the durable
// pulsar.repl.<remote> cursors, checkpointed in etcd. A topic that only
// replicates — no client of this cluster uses it — must still get an owner
// after its broker died, or replication would stop until a client came:
// every ReplicationSweepInterval each broker lists the stored topics, and
// for each one that replicates it looks up its bundle (as a client's lookup
// would: an unowned bundle is taken by the least-loaded live broker) and
// loads the topic when this broker owns it. One lookup per bundle and
// sweep: a bundle owned elsewhere is not asked about again for its other
// topics.

// bundleNamer is implemented by an Ownership that can name a topic's
// bundle (the sweep asks about each bundle once).
type bundleNamer interface {
	Bundle(ns, topic string) string
}

func (b *Broker) sweepReplicationLoop() {
	tick := time.NewTicker(b.cfg.ReplicationSweepInterval)
	defer tick.Stop()
	for {
		b.sweepReplication()
		select {
		case <-b.stopBG:
			return
		case <-b.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sweepReplication loads the replicated topics this broker owns or may
// take.
func (b *Broker) sweepReplication() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
	names, err := b.store.Topics(ctx)
	cancel()
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Warn("list topics to resume replication", "err", err)
		}
		return
	}
	o := b.cfg.Ownership
	namer, _ := o.(bundleNamer)
	elsewhere := map[string]bool{} // bundles another broker serves (or was chosen for)
	for _, full := range names {
		if b.ctx.Err() != nil {
			return
		}
		name, err := naming.ParseTopic(full)
		if err != nil || !name.IsPersistent() || b.isLoaded(full) {
			continue
		}
		ns := name.Namespace.String()
		bundle := ""
		if namer != nil {
			bundle = ns + "/" + namer.Bundle(ns, full)
			if elsewhere[bundle] {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
		p, err := b.EffectivePolicies(ctx, name)
		if err != nil || !replicatesBeyond(p.ReplicationClusters, b.cfg.ClusterName) {
			cancel()
			continue
		}
		if !o.Owns(ns, full) {
			ans, err := o.Lookup(ctx, ns, full, false)
			if err != nil || !ans.Self {
				cancel()
				if bundle != "" {
					elsewhere[bundle] = true
				}
				continue
			}
		}
		_, err = b.getTopic(ctx, name)
		cancel()
		if errors.Is(err, errShuttingDown) {
			return
		}
		if err != nil {
			b.log.Warn("load topic to resume replication", "topic", full, "err", err)
			continue
		}
		b.log.Info("replicated topic loaded by this broker, its bundle's owner", "topic", full)
	}
}

// isLoaded reports whether topic full is loaded (or loading) here.
func (b *Broker) isLoaded(full string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.topics[full]
	if !ok {
		_, ok = b.loads[full]
	}
	return ok
}
