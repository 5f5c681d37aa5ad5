package meta

import (
	"testing"
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
