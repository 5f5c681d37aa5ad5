package meta

import (
	"context"
	"errors"
	"testing"

	"github.com/messagebus/messagebus/internal/naming"
)

func TestTopicPoliciesOverNamespace(t *testing.T) {
	ttl, ns10, topic2 := 60, 10, 2
	ns := Policies{
		MessageTTLInSeconds:  &ttl,
		MaxProducersPerTopic: &ns10,
		BacklogQuotaMap: map[string]BacklogQuota{
			BacklogQuotaDestinationStorage: {LimitSize: 100, Policy: BacklogPolicyProducerException},
			BacklogQuotaMessageAge:         {LimitTime: 5, Policy: BacklogPolicyProducerRequestHold},
		},
	}
	tp := TopicPolicies{
		MaxProducerPerTopic: &topic2,
		BacklogQuotaMap:     map[string]BacklogQuota{BacklogQuotaDestinationStorage: {LimitSize: 999, Policy: BacklogPolicyConsumerBacklogEviction}},
	}
	p := tp.Over(ns)
	if *p.MaxProducersPerTopic != 2 || *p.MessageTTLInSeconds != 60 {
		t.Fatalf("merged limits: producers %d ttl %d", *p.MaxProducersPerTopic, *p.MessageTTLInSeconds)
	}
	// Quotas override per type; the namespace's map is left alone.
	if p.BacklogQuotaMap[BacklogQuotaDestinationStorage].LimitSize != 999 || p.BacklogQuotaMap[BacklogQuotaMessageAge].LimitTime != 5 {
		t.Fatalf("merged quotas: %+v", p.BacklogQuotaMap)
	}
	if ns.BacklogQuotaMap[BacklogQuotaDestinationStorage].LimitSize != 100 {
		t.Fatal("Over modified the namespace's quotas")
	}
}

func TestTopicPoliciesRecord(t *testing.T) {
	r := &Resources{Store: openTest(t)}
	ctx := context.Background()
	part, err := naming.ParseTopic("persistent://public/default/t-partition-3")
	if err != nil {
		t.Fatal(err)
	}
	n := 4
	if err := r.UpdateTopicPolicies(ctx, part, func(tp *TopicPolicies) error { tp.MaxConsumerPerTopic = &n; return nil }); err != nil {
		t.Fatal(err)
	}
	// A partition's policies are its partitioned topic's.
	tp, err := r.TopicPolicies(ctx, part.Partitioned())
	if err != nil || tp.MaxConsumerPerTopic == nil || *tp.MaxConsumerPerTopic != 4 {
		t.Fatalf("read back: %+v %v", tp, err)
	}
	// Removing the last policy removes the record.
	if err := r.UpdateTopicPolicies(ctx, part, func(tp *TopicPolicies) error { tp.MaxConsumerPerTopic = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Store.Get(ctx, TopicPoliciesKey(part)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record of empty policies: %v", err)
	}
	if err := r.DeleteTopicPolicies(ctx, part); err != nil {
		t.Fatalf("delete missing policies: %v", err)
	}
}
