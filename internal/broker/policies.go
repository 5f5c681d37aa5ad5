package broker

import (
	"context"
	"fmt"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Policies come from one source, meta.PolicyCache, shared with
// authorization: a watch keeps it fresh, so admin updates apply at the next
// use. A policy that cannot be read is an error, never the broker's
// defaults: acting on defaults (retention 0, no quota) because etcd was
// briefly unreachable could delete data or let producers past a quota.

// EffectivePolicies returns the policies that apply to a topic: each one
// set on the topic, else on its namespace, else the broker default (what
// Pulsar's admin API answers with ?applied=true). Retention,
// deduplication and the destination_storage backlog quota are always set.
// An error (the namespace does not exist, or the metadata store failed)
// comes with no policies: the caller must not act on defaults.
func (b *Broker) EffectivePolicies(ctx context.Context, name naming.Topic) (meta.Policies, error) {
	ns, err := b.policies.Namespace(ctx, name.Namespace)
	if err != nil {
		return meta.Policies{}, fmt.Errorf("policies of namespace %s: %w", name.Namespace, err)
	}
	tp, err := b.policies.TopicPolicies(ctx, name)
	if err != nil {
		return meta.Policies{}, fmt.Errorf("policies of topic %s: %w", name, err)
	}
	return b.WithDefaults(tp.Over(ns)), nil
}

// effectivePolicies is EffectivePolicies for request handlers: a failed
// read is counted and retriable for the client.
func (b *Broker) effectivePolicies(ctx context.Context, name naming.Topic) (meta.Policies, error) {
	p, err := b.EffectivePolicies(ctx, name)
	if err != nil {
		return p, b.metadataError("policies", err)
	}
	return p, nil
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
	b.limitDefaults(&p)
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

// reloadForDeduplication unloads the loaded persistent topics whose
// deduplication no longer matches their policy: the state is built when a
// topic loads, and its clients reconnect at once to the reloaded topic.
func (b *Broker) reloadForDeduplication() {
	for _, t := range b.topicList() {
		if t.ledger == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
		p, err := b.EffectivePolicies(ctx, t.name)
		cancel()
		if err != nil {
			// Keep the topic as it is; the next change or reset retries.
			b.metadataError("policies", err)
			continue
		}
		if want := *p.DeduplicationEnabled; want != (t.dedup != nil) {
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
// Called with t.mu held; p are the topic's effective policies.
func (t *Topic) checkProducerLimits(p meta.Policies) error {
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
func (t *Topic) checkConsumerLimits(p meta.Policies) error {
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
func (s *Subscription) checkSubscriptionLimit(p meta.Policies) error {
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
