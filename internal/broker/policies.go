package broker

import (
	"context"
	"strings"
	"sync"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// policyCache keeps namespace and topic policies in memory; a watch on the
// metadata store drops entries that change, so admin updates apply at the
// next use.
type policyCache struct {
	mu sync.Mutex
	// gen counts invalidations: a value read from the store while one
	// happened may be stale and is not cached.
	gen    uint64
	m      map[string]meta.Policies
	topics map[string]meta.TopicPolicies // by meta.TopicPoliciesKey; zero value: none set
}

// maxCachedTopicPolicies bounds the topic policies cached, most of them "none".
const maxCachedTopicPolicies = 100000

// policies returns the policies of a namespace (zero value when it has none
// or cannot be read: the broker then applies its defaults).
func (b *Broker) policies(ns naming.Namespace) meta.Policies {
	key := ns.String()
	b.pcache.mu.Lock()
	p, ok := b.pcache.m[key]
	gen := b.pcache.gen
	b.pcache.mu.Unlock()
	if ok {
		return p
	}
	p, err := b.meta.Namespace(context.Background(), ns)
	if err != nil {
		return meta.Policies{}
	}
	b.pcache.mu.Lock()
	if b.pcache.gen == gen {
		b.pcache.m[key] = p
	}
	b.pcache.mu.Unlock()
	return p
}

// topicPolicies returns the policies set on a topic (for a partition, on its
// partitioned topic). Topics without any are cached too: most have none and
// every producer and consumer asks.
func (b *Broker) topicPolicies(name naming.Topic) meta.TopicPolicies {
	key := meta.TopicPoliciesKey(name)
	b.pcache.mu.Lock()
	tp, ok := b.pcache.topics[key]
	gen := b.pcache.gen
	b.pcache.mu.Unlock()
	if ok {
		return tp
	}
	tp, err := b.meta.TopicPolicies(context.Background(), name)
	if err != nil {
		return meta.TopicPolicies{}
	}
	b.pcache.mu.Lock()
	if b.pcache.gen == gen {
		// Names of deleted topics would stay forever: start afresh instead.
		if len(b.pcache.topics) >= maxCachedTopicPolicies {
			clear(b.pcache.topics)
		}
		b.pcache.topics[key] = tp
	}
	b.pcache.mu.Unlock()
	return tp
}

// EffectivePolicies returns the policies that apply to a topic: each one
// set on the topic, else on its namespace, else the broker default (what
// Pulsar's admin API answers with ?applied=true). Retention,
// deduplication and the destination_storage backlog quota are always set.
func (b *Broker) EffectivePolicies(name naming.Topic) meta.Policies {
	return b.WithDefaults(b.topicPolicies(name).Over(b.policies(name.Namespace)))
}

// WithDefaults completes policies with the broker's defaults for the
// policies the broker always applies. p is not modified.
func (b *Broker) WithDefaults(p meta.Policies) meta.Policies {
	if p.Retention == nil {
		p.Retention = &meta.RetentionPolicies{RetentionTimeInMinutes: b.cfg.DefaultRetentionMinutes, RetentionSizeInMB: b.cfg.DefaultRetentionSizeMB}
	}
	if p.DeduplicationEnabled == nil {
		enabled := b.cfg.DeduplicationEnabled
		p.DeduplicationEnabled = &enabled
	}
	if _, ok := p.BacklogQuotaMap[meta.BacklogQuotaDestinationStorage]; !ok {
		// Pulsar's default: no limit (backlogQuotaDefaultLimitBytes -1).
		m := make(map[string]meta.BacklogQuota, len(p.BacklogQuotaMap)+1)
		for k, v := range p.BacklogQuotaMap {
			m[k] = v
		}
		m[meta.BacklogQuotaDestinationStorage] = meta.BacklogQuota{Limit: -1, LimitSize: -1, LimitTime: -1, Policy: meta.BacklogPolicyProducerRequestHold}
		p.BacklogQuotaMap = m
	}
	return p
}

// watchPolicies invalidates cached policies on every change of namespace or
// topic policies, and all of them when the watch resets, until ctx ends, and has loaded topics reconsider the
// policies they apply only when loaded (deduplication).
func (b *Broker) watchPolicies(ctx context.Context) {
	defer b.bgWG.Done()
	for ev := range b.meta.Store.Watch(ctx, "/admin/") {
		key := ev.KV.Key
		b.pcache.mu.Lock()
		switch {
		case ev.Type == meta.EventReset:
			// Changes may have been missed (etcd compacted the watch's
			// history): nothing cached can be trusted.
			clear(b.pcache.m)
			clear(b.pcache.topics)
		case strings.HasPrefix(key, meta.NamespacePoliciesPrefix):
			delete(b.pcache.m, strings.TrimPrefix(key, meta.NamespacePoliciesPrefix))
		case strings.HasPrefix(key, meta.TopicPoliciesPrefix):
			delete(b.pcache.topics, key)
		default:
			b.pcache.mu.Unlock()
			continue
		}
		b.pcache.gen++
		b.pcache.mu.Unlock()
		// Never block here: the store delivers events while holding its lock.
		select {
		case b.policiesChanged <- struct{}{}:
		default:
		}
	}
}

// reloadForDeduplication unloads the loaded persistent topics whose
// deduplication no longer matches their policy: the state is built when a
// topic loads, and its clients reconnect at once to the reloaded topic.
func (b *Broker) reloadForDeduplication() {
	for _, t := range b.topicList() {
		if t.ledger == nil {
			continue
		}
		if want := *b.EffectivePolicies(t.name).DeduplicationEnabled; want != (t.dedup != nil) {
			if err := b.UnloadTopic(t.fullName); err != nil {
				b.log.Error("reload topic for a deduplication change", "topic", t.fullName, "err", err)
			}
		}
	}
}

// retention returns the effective retention: the policy, else the broker
// default. -1 means unlimited.
func (b *Broker) retention(p meta.Policies) (minutes int, sizeMB int64) {
	if p.Retention != nil {
		return p.Retention.RetentionTimeInMinutes, p.Retention.RetentionSizeInMB
	}
	return b.cfg.DefaultRetentionMinutes, b.cfg.DefaultRetentionSizeMB
}

// checkProducerLimits refuses a producer beyond the topic's effective
// max producers or while the topic's backlog quota blocks producers.
// Called with t.mu held.
func (t *Topic) checkProducerLimits() error {
	p := t.b.EffectivePolicies(t.name)
	if p.MaxProducersPerTopic != nil && *p.MaxProducersPerTopic > 0 && len(t.producers) >= *p.MaxProducersPerTopic {
		return newError(producerBusy, "topic "+t.fullName+" reached its maximum number of producers")
	}
	if t.quotaBlocked != nil {
		return t.quotaBlocked
	}
	return nil
}

// checkConsumerLimits refuses a consumer beyond the topic's effective max
// consumers.
func (t *Topic) checkConsumerLimits() error {
	p := t.b.EffectivePolicies(t.name)
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

// checkSubscriptionLimit refuses a consumer beyond the effective max
// consumers per subscription.
func (s *Subscription) checkSubscriptionLimit() error {
	p := s.topic.b.EffectivePolicies(s.topic.name)
	if p.MaxConsumersPerSubscription == nil || *p.MaxConsumersPerSubscription <= 0 {
		return nil
	}
	s.mu.Lock()
	n := 0
	if s.disp != nil {
		n = len(s.disp.consumers())
	}
	s.mu.Unlock()
	if n >= *p.MaxConsumersPerSubscription {
		return newError(consumerBusy, "subscription "+s.name+" of "+s.topic.fullName+" reached its maximum number of consumers")
	}
	return nil
}
