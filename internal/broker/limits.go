package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// The limit policies: maxMessageSize (topics), unacked messages per consumer
// and subscription (unacked.go), subscriptions per topic (checked where a
// subscription is created), topics per namespace, and subscription
// expiration. Loaded topics pick up changes when the policy watch reports
// one and at every enforcement round.

// ErrTooManyTopics refuses a topic beyond the namespace's maxTopicsPerNamespace.
//
//lint:ignore ST1005 Pulsar's words, which clients and tests compare
var ErrTooManyTopics = errors.New("Exceed maximum number of topics in namespace")

// refreshLimits applies the current limit policies to every loaded topic.
func (b *Broker) refreshLimits() {
	for _, t := range b.topicList() {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
		p, err := b.EffectivePolicies(ctx, t.name)
		cancel()
		if err != nil {
			b.metadataError("policies", err) // kept as they are; the next round retries
			continue
		}
		t.applyLimits(p)
	}
}

// applyLimits applies the effective policies' limits to t, its
// subscriptions and their consumers.
func (t *Topic) applyLimits(p meta.Policies) {
	t.maxMessageSize.Store(int64(valueOrInt(p.MaxMessageSize, 0)))
	t.applyRates(p)
	t.applyDelivery(p)
	for _, s := range t.subscriptions() {
		s.mu.Lock()
		unblocked := false
		if s.disp != nil && isShared(s.subType) {
			wasBlocked := s.unackedBlocked
			for _, c := range s.disp.consumers() {
				s.setUnackedLimits(c, p)
				if c.unackedBlocked && (c.maxUnacked <= 0 || c.unacked <= c.maxUnacked/2) {
					c.unackedBlocked = false
					unblocked = true
				}
			}
			unblocked = unblocked || (wasBlocked && !s.unackedBlocked)
		}
		s.mu.Unlock()
		if unblocked {
			s.signal() // only then: a needless wake is not free for readers of compacted views
		}
	}
}

// expireSubscriptions deletes the durable subscriptions that have had no
// consumer for the namespace's subscription_expiration_time_minutes (as
// Pulsar's subscriptionExpirationTimeMinutes; 0: never). Internal
// subscriptions (names starting with "__", such as compaction's) and
// replication cursors are kept.
func (t *Topic) expireSubscriptions(ctx context.Context, p meta.Policies, now time.Time) {
	minutes := valueOrInt(p.SubscriptionExpirationTimeMinutes, int(t.b.dyn.subscriptionExpirationMinutes.Load()))
	if minutes <= 0 {
		return
	}
	cutoff := now.Add(-time.Duration(minutes) * time.Minute)
	for _, s := range t.durableSubscriptions() {
		if strings.HasPrefix(s.name, "__") || isReplicationCursor(s.name) {
			continue
		}
		s.mu.Lock()
		idle := (s.disp == nil || len(s.disp.consumers()) == 0) && s.lastActive.Before(cutoff)
		s.mu.Unlock()
		if !idle {
			continue
		}
		if err := t.b.DeleteSubscription(ctx, t.name, s.name, false); err != nil {
			if !errors.Is(err, ErrSubscriptionBusy) && !errors.Is(err, ErrSubscriptionNotFound) {
				t.b.log.Error("subscription expiration", "topic", t.fullName, "subscription", s.name, "err", err)
			}
			continue
		}
		t.b.metrics.limits.expired.Inc()
		t.b.log.Info("subscription expired", "topic", t.fullName, "subscription", s.name, "idle_minutes", minutes)
	}
}

// CheckTopicQuota refuses creating a topic of partitions partitions (0: not
// partitioned) in name's namespace when it would pass the namespace's
// max_topics_per_namespace (or the broker's default; 0: no limit). Each
// partition counts as a topic, as in Pulsar.
func (b *Broker) CheckTopicQuota(ctx context.Context, name naming.Topic, partitions int) error {
	limit, err := b.topicLimit(ctx, name.Namespace)
	if err != nil || limit <= 0 {
		return err
	}
	topics, err := b.NamespaceTopics(ctx, name.Namespace, naming.Persistent, naming.NonPersistent)
	if err != nil {
		return b.metadataError("topics", err)
	}
	if len(topics)+max(partitions, 1) > limit {
		b.metrics.limits.refused.WithLabelValues("max_topics_per_namespace").Inc()
		return fmt.Errorf("%w %s (limit %d)", ErrTooManyTopics, name.Namespace, limit)
	}
	return nil
}

// topicLimit returns the namespace's max_topics_per_namespace, else the
// broker's default (0: no limit).
func (b *Broker) topicLimit(ctx context.Context, ns naming.Namespace) (int, error) {
	p, err := b.policies.Namespace(ctx, ns)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return 0, nil // reported where the topic is created
		}
		return 0, b.metadataError("namespace", err)
	}
	return valueOrInt(p.MaxTopicsPerNamespace, int(b.dyn.maxTopicsPerNamespace.Load())), nil
}

// limitDefaults completes p with the broker's defaults of the limit
// policies, so that ?applied=true shows the values in force.
func (b *Broker) limitDefaults(p *meta.Policies) {
	def := func(v **int, d int) {
		if *v == nil {
			*v = &d
		}
	}
	def(&p.MaxUnackedMessagesPerConsumer, int(b.dyn.maxUnackedPerConsumer.Load()))
	def(&p.MaxUnackedMessagesPerSubscription, int(b.dyn.maxUnackedPerSubscription.Load()))
	def(&p.MaxSubscriptionsPerTopic, int(b.dyn.maxSubscriptionsPerTopic.Load()))
	def(&p.MaxTopicsPerNamespace, int(b.dyn.maxTopicsPerNamespace.Load()))
	def(&p.SubscriptionExpirationTimeMinutes, int(b.dyn.subscriptionExpirationMinutes.Load()))
	def(&p.MaxMessageSize, b.cfg.MaxMessageSize)
}
