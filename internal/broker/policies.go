package broker

import (
	"context"
	"strings"
	"sync"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// policyCache keeps namespace policies in memory; a watch on the metadata
// store drops entries that change, so admin updates apply at the next use.
type policyCache struct {
	mu sync.Mutex
	m  map[string]meta.Policies
}

// policies returns the policies of a namespace (zero value when it has none
// or cannot be read: the broker then applies its defaults).
func (b *Broker) policies(ns naming.Namespace) meta.Policies {
	key := ns.String()
	b.pcache.mu.Lock()
	p, ok := b.pcache.m[key]
	b.pcache.mu.Unlock()
	if ok {
		return p
	}
	p, err := b.meta.Namespace(context.Background(), ns)
	if err != nil {
		return meta.Policies{}
	}
	b.pcache.mu.Lock()
	b.pcache.m[key] = p
	b.pcache.mu.Unlock()
	return p
}

// watchPolicies invalidates cached policies on every change under the
// policies prefix until ctx ends.
func (b *Broker) watchPolicies(ctx context.Context) {
	defer b.bgWG.Done()
	for ev := range b.meta.Store.Watch(ctx, "/admin/policies/") {
		ns := strings.TrimPrefix(ev.KV.Key, "/admin/policies/")
		b.pcache.mu.Lock()
		delete(b.pcache.m, ns)
		b.pcache.mu.Unlock()
	}
}

// retention returns the effective retention of a namespace: its policy, else
// the broker default. -1 means unlimited.
func (b *Broker) retention(p meta.Policies) (minutes int, sizeMB int64) {
	if p.Retention != nil {
		return p.Retention.RetentionTimeInMinutes, p.Retention.RetentionSizeInMB
	}
	return b.cfg.DefaultRetentionMinutes, b.cfg.DefaultRetentionSizeMB
}

// checkProducerLimits refuses a producer beyond the namespace's
// max_producers_per_topic or while the topic's backlog quota blocks producers.
// Called with t.mu held.
func (t *Topic) checkProducerLimits() error {
	p := t.b.policies(t.name.Namespace)
	if p.MaxProducersPerTopic != nil && *p.MaxProducersPerTopic > 0 && len(t.producers) >= *p.MaxProducersPerTopic {
		return newError(producerBusy, "topic "+t.fullName+" reached its maximum number of producers")
	}
	if t.quotaBlocked != nil {
		return t.quotaBlocked
	}
	return nil
}

// checkConsumerLimits refuses a consumer beyond max_consumers_per_topic.
func (t *Topic) checkConsumerLimits() error {
	p := t.b.policies(t.name.Namespace)
	if p.MaxConsumersPerTopic == nil || *p.MaxConsumersPerTopic <= 0 {
		return nil
	}
	n := 0
	for _, s := range t.subscriptions() {
		s.mu.Lock()
		if s.disp != nil {
			n += len(s.disp.consumers())
		}
		s.mu.Unlock()
	}
	if n >= *p.MaxConsumersPerTopic {
		return newError(consumerBusy, "topic "+t.fullName+" reached its maximum number of consumers")
	}
	return nil
}
