package broker

import (
	"context"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

const (
	producerBusy = pb.ServerError_ProducerBusy
	consumerBusy = pb.ServerError_ConsumerBusy
)

// policyLoop enforces message TTL, backlog quotas and retention on every
// loaded persistent topic, every PolicyCheckInterval, and applies changes of
// deduplication as they happen.
func (b *Broker) policyLoop() {
	defer b.bgWG.Done()
	tick := time.NewTicker(b.cfg.PolicyCheckInterval)
	defer tick.Stop()
	b.reloadDynamic()
	for {
		select {
		case <-b.stopBG:
			return
		case <-b.policiesChanged:
			b.reloadForDeduplication()
			b.refreshLimits()
			b.syncAllReplication()
		case now := <-tick.C:
			b.reloadDynamic()
			for _, t := range b.topicList() {
				if t.ledger != nil {
					t.enforcePolicies(now)
				}
			}
			b.syncAllReplication()
		}
	}
}

// durableSubscriptions are the subscriptions whose cursors hold data.
func (t *Topic) durableSubscriptions() []*Subscription {
	var out []*Subscription
	for _, s := range t.subscriptions() {
		if s.durable {
			out = append(out, s)
		}
	}
	return out
}

// enforcePolicies runs one round of TTL, backlog quota and retention on t.
// When its policies cannot be read the round is skipped: the broker's
// defaults (retention 0/0 deletes consumed data) must never stand in for a
// policy a failing metadata store could not deliver. The next round retries.
func (t *Topic) enforcePolicies(now time.Time) {
	ctx, cancel := context.WithTimeout(t.b.ctx, t.b.cfg.OperationTimeout)
	defer cancel()
	p, err := t.b.EffectivePolicies(ctx, t.name)
	if err != nil {
		t.b.metadataError("policies", err)
		t.b.metrics.enforcementSkips.Inc()
		t.b.log.Warn("policy enforcement skipped: policies unreadable", "topic", t.fullName, "err", err)
		return
	}
	t.applyLimits(p)
	t.expireSubscriptions(ctx, p, now)
	subs := t.durableSubscriptions()
	if ttl := p.MessageTTLInSeconds; ttl != nil && *ttl > 0 {
		t.expireOlderThan(ctx, subs, now.Add(-time.Duration(*ttl)*time.Second))
	}
	t.enforceBacklogQuota(ctx, p, subs, now)
	t.enforceRetention(ctx, p, subs, now)
}

// expireOlderThan acknowledges, on every subscription, the entries published
// before cutoff (message TTL moves cursors; it does not delete data).
func (t *Topic) expireOlderThan(ctx context.Context, subs []*Subscription, cutoff time.Time) {
	if len(subs) == 0 {
		return
	}
	first, err := findByPublishTime(ctx, t.ledger, uint64(cutoff.UnixMilli()))
	if err != nil {
		t.b.log.Error("message expiry", "topic", t.fullName, "err", err)
		return
	}
	for _, s := range subs {
		s.ackBefore(first)
	}
}

// backlog returns the number of unacked entries of a subscription.
func (s *Subscription) backlog(last int64) (entries int64, oldestUnacked int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.cursor.MarkDelete
	if last <= md {
		return 0, -1
	}
	entries = last - md - s.cursor.AckedAfterMarkDelete(last) - s.topic.markers.unacked(s.cursor, md, last)
	return entries, s.cursor.NextUnacked(md + 1)
}

// ackBefore acknowledges every entry with id < next (TTL, eviction, skip).
func (s *Subscription) ackBefore(next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	through := next - 1
	if through <= s.cursor.MarkDelete {
		return
	}
	s.cursor.AckCumulative(through)
	for id := range s.pending {
		if id <= through {
			s.forget(id)
		}
	}
	for len(s.replay) > 0 && s.replay[0] <= through {
		s.replay = s.replay[1:]
	}
	s.dirty = true
}

// avgEntrySize estimates bytes per entry, for quota and retention by size.
func (t *Topic) avgEntrySize() int64 {
	n := t.ledger.Entries()
	if n <= 0 {
		return 0
	}
	return t.ledger.Size() / n
}

// enforceBacklogQuota applies destination_storage (bytes) and message_age
// (seconds) quotas: producer_request_hold and producer_exception refuse
// producers (existing ones are closed and refused on reconnect) until the
// backlog is back under quota; consumer_backlog_eviction moves the slowest
// cursors until the backlog is under 90% of the quota.
func (t *Topic) enforceBacklogQuota(ctx context.Context, p meta.Policies, subs []*Subscription, now time.Time) {
	var blocked error
	last := t.ledger.LastEntryID()
	avg := t.avgEntrySize()
	if q, ok := p.BacklogQuotaMap[meta.BacklogQuotaDestinationStorage]; ok {
		limit := q.LimitSize
		if limit <= 0 {
			limit = q.Limit
		}
		for _, s := range subs {
			entries, _ := s.backlog(last)
			if limit <= 0 || avg <= 0 || entries*avg <= limit {
				continue
			}
			if q.Policy == meta.BacklogPolicyConsumerBacklogEviction {
				keep := (limit * 9 / 10) / avg
				s.ackBefore(last + 1 - keep)
				continue
			}
			blocked = quotaError(q.Policy, t.fullName, "size")
		}
	}
	if q, ok := p.BacklogQuotaMap[meta.BacklogQuotaMessageAge]; ok && q.LimitTime > 0 {
		cutoff := now.Add(-time.Duration(q.LimitTime) * time.Second)
		for _, s := range subs {
			entries, oldest := s.backlog(last)
			if entries == 0 || oldest < 0 || publishTime(ctx, t, oldest).After(cutoff) {
				continue
			}
			if q.Policy == meta.BacklogPolicyConsumerBacklogEviction {
				keepFrom, err := findByPublishTime(ctx, t.ledger, uint64(now.Add(-time.Duration(q.LimitTime*9/10)*time.Second).UnixMilli()))
				if err == nil {
					s.ackBefore(keepFrom)
				}
				continue
			}
			blocked = quotaError(q.Policy, t.fullName, "age")
		}
	}
	t.mu.Lock()
	wasBlocked := t.quotaBlocked != nil
	t.quotaBlocked = blocked
	var kick []*Producer
	if blocked != nil && !wasBlocked {
		for name, pr := range t.producers {
			kick = append(kick, pr)
			delete(t.producers, name)
			t.b.metrics.producers.Dec()
		}
		t.exclusive = nil
	}
	t.mu.Unlock()
	for _, pr := range kick {
		pr.closeByBroker()
	}
}

func quotaError(policy, topic, kind string) error {
	code := pb.ServerError_ProducerBlockedQuotaExceededError // hold: the client retries
	if policy == meta.BacklogPolicyProducerException {
		code = pb.ServerError_ProducerBlockedQuotaExceededException
	}
	return newError(code, "backlog quota ("+kind+") of "+topic+" exceeded")
}

// publishTime reads an entry's publish time (zero time when unreadable).
func publishTime(ctx context.Context, t *Topic, id int64) time.Time {
	es, err := t.ledger.Read(ctx, id, 1, 0)
	if err != nil || len(es) == 0 {
		return time.Time{}
	}
	md, ok := entryMetadata(es[0].Data)
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(int64(md.PublishTime))
}

// enforceRetention trims entries every durable subscription has consumed
// once they fall outside the retention policy: older than its time or beyond
// its size (either limit; -1 means unlimited, 0/0 deletes as soon as
// consumed). Topics without durable subscriptions keep their data: nothing
// says it was consumed (Pulsar would drop it at its next ledger roll-over).
func (t *Topic) enforceRetention(ctx context.Context, p meta.Policies, subs []*Subscription, now time.Time) {
	view := t.compactedView() // the compaction cursor holds data back like a subscription
	if len(subs) == 0 && view.l == nil {
		return
	}
	// Replication cursors hold data back too, but never release it alone:
	// replicating an entry does not mean this cluster's consumers had it.
	reps := t.replicators()
	minutes, sizeMB := t.b.retention(p)
	if minutes < 0 && sizeMB < 0 {
		return
	}
	consumed := int64(1<<62 - 1)
	for _, s := range subs {
		if md := s.markDelete(); md+1 < consumed {
			consumed = md + 1
		}
	}
	if view.l != nil {
		consumed = min(consumed, view.horizon+1)
	}
	for _, r := range reps {
		consumed = min(consumed, r.MarkDelete()+1)
	}
	// The deduplication snapshot must not hold data back, but replaying
	// from a trimmed position is fine: only newer entries matter then.
	first := t.ledger.FirstEntryID()
	if consumed <= first {
		return
	}
	trim := first
	if minutes >= 0 {
		byTime, err := findByPublishTime(ctx, t.ledger, uint64(now.Add(-time.Duration(minutes)*time.Minute).UnixMilli()))
		if err == nil {
			trim = max(trim, min(byTime, consumed))
		}
	}
	if sizeMB >= 0 {
		if avg := t.avgEntrySize(); avg > 0 {
			consumedBytes := (consumed - first) * avg
			if over := consumedBytes - sizeMB<<20; over > 0 {
				trim = max(trim, min(consumed, first+(over+avg-1)/avg))
			}
		}
	}
	if trim > first {
		t.ledger.Trim(trim)
	}
}
