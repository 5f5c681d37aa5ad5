package meta

import (
	"encoding/json"
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

func TestBacklogQuotaLimitsAsStrings(t *testing.T) {
	for body, want := range map[string]BacklogQuota{
		`{"limit": "10240", "policy": "producer_request_hold"}`:    {Limit: 10240, Policy: "producer_request_hold"},
		`{"limitSize": 5, "limitTime": "60", "policy": "x"}`:       {LimitSize: 5, LimitTime: 60, Policy: "x"},
		`{"limitSize": -1, "policy": "consumer_backlog_eviction"}`: {LimitSize: -1, Policy: "consumer_backlog_eviction"},
	} {
		var q BacklogQuota
		if err := json.Unmarshal([]byte(body), &q); err != nil || q != want {
			t.Errorf("%s: %+v %v, want %+v", body, q, err, want)
		}
	}
	for _, body := range []string{`{"limit": "ten"}`, `{"limitSize": 1.5}`, `{"limit": true}`} {
		var q BacklogQuota
		if err := json.Unmarshal([]byte(body), &q); err == nil {
			t.Errorf("%s accepted: %+v", body, q)
		}
	}
}

func TestTopicOffloadPoliciesOverNamespace(t *testing.T) {
	bytes, secs, lag, off := int64(100), int64(60), int64(0), int64(-1)
	ns := Policies{OffloadThreshold: &bytes, OffloadThresholdInSeconds: &secs, OffloadDeletionLagMs: &lag}
	var tp TopicPolicies
	if err := json.Unmarshal([]byte(`{"offloadPolicies":{"managedLedgerOffloadThresholdInBytes":-1,"managedLedgerOffloadDriver":"aws-s3"}}`), &tp); err != nil {
		t.Fatal(err)
	}
	p := tp.Over(ns)
	if *p.OffloadThreshold != off || *p.OffloadThresholdInSeconds != 60 || *p.OffloadDeletionLagMs != 0 {
		t.Fatalf("merged: bytes %d seconds %d lag %d", *p.OffloadThreshold, *p.OffloadThresholdInSeconds, *p.OffloadDeletionLagMs)
	}
	if tp.IsEmpty() || *ns.OffloadThreshold != 100 {
		t.Fatal("IsEmpty, or Over modified the namespace")
	}
}
