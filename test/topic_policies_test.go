package test

// Topic-level policies through the official pulsaradmin client: each
// overrides its namespace's for one topic only, and removing it falls back
// to the namespace's.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// policyTopics creates non-partitioned topics in ns (topic policies need
// an existing topic) and returns their names.
func policyTopics(t *testing.T, admin pulsaradmin.Client, ns string, names ...string) []string {
	t.Helper()
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "persistent://" + ns + "/" + n
		if err := admin.Topics().Create(topicName(t, out[i]), 0); err != nil {
			t.Fatalf("create %s: %v", out[i], err)
		}
	}
	return out
}

func scopedPolicies(t *testing.T, admin pulsaradmin.Client) pulsaradmin.TopicPolicies {
	t.Helper()
	tp, err := pulsaradmin.TopicPoliciesOf(admin, false)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestTopicPolicyAdminRoundTrip(t *testing.T) {
	s, ns := policyServer(t, `{"message_ttl_in_seconds": 60, "max_producers_per_topic": 7}`)
	admin := newAdmin(t, s)
	scoped := scopedPolicies(t, admin)
	ctx := context.Background()
	topic := policyTopics(t, admin, ns, "rt")[0]
	tn := topicName(t, topic)

	// Message TTL: unset reads -1 (pulsaradmin's legacy call) or nil,
	// applied is the namespace's; set overrides it; remove falls back.
	if v, err := admin.Topics().GetMessageTTL(tn); err != nil || v != -1 {
		t.Fatalf("unset TTL: %d %v", v, err)
	}
	if v, err := scoped.GetMessageTTL(ctx, tn, true); err != nil || v == nil || *v != 60 {
		t.Fatalf("applied TTL before set: %v %v", v, err)
	}
	if err := admin.Topics().SetMessageTTL(tn, 5); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMessageTTL(tn); err != nil || v != 5 {
		t.Fatalf("TTL: %d %v", v, err)
	}
	if v, err := scoped.GetMessageTTL(ctx, tn, true); err != nil || v == nil || *v != 5 {
		t.Fatalf("applied TTL: %v %v", v, err)
	}
	if err := admin.Topics().RemoveMessageTTL(tn); err != nil {
		t.Fatal(err)
	}
	if v, err := scoped.GetMessageTTL(ctx, tn, false); err != nil || v != nil {
		t.Fatalf("removed TTL: %v %v", v, err)
	}

	// Retention.
	if err := admin.Topics().SetRetention(tn, utils.RetentionPolicies{RetentionTimeInMinutes: 10, RetentionSizeInMB: 20}); err != nil {
		t.Fatal(err)
	}
	if r, err := admin.Topics().GetRetention(tn, false); err != nil || r == nil || r.RetentionTimeInMinutes != 10 || r.RetentionSizeInMB != 20 {
		t.Fatalf("retention: %+v %v", r, err)
	}

	// Backlog quotas: the topic's own map, and applied per type.
	if err := admin.Topics().SetBacklogQuota(tn, utils.NewBacklogQuota(1<<20, 0, utils.ProducerException), utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	m, err := admin.Topics().GetBacklogQuotaMap(tn, false)
	if err != nil || len(m) != 1 || m[utils.DestinationStorage].LimitSize != 1<<20 || m[utils.DestinationStorage].Policy != utils.ProducerException {
		t.Fatalf("backlog quota map: %+v %v", m, err)
	}
	// Beyond the retention size (20 MB) the quota is refused, as in Pulsar.
	err = admin.Topics().SetBacklogQuota(tn, utils.NewBacklogQuota(30<<20, 0, utils.ProducerException), utils.DestinationStorage)
	expectStatus(t, err, http.StatusPreconditionFailed, "quota beyond retention")
	if err := admin.Topics().RemoveBacklogQuota(tn, utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	if m, err := admin.Topics().GetBacklogQuotaMap(tn, false); err != nil || len(m) != 0 {
		t.Fatalf("removed backlog quota: %+v %v", m, err)
	}
	if m, err := admin.Topics().GetBacklogQuotaMap(tn, true); err != nil || m[utils.DestinationStorage].LimitSize != -1 {
		t.Fatalf("applied default backlog quota: %+v %v", m, err)
	}

	// Limits and deduplication.
	if v, err := scoped.GetMaxProducers(ctx, tn, true); err != nil || v == nil || *v != 7 {
		t.Fatalf("applied max producers: %v %v", v, err)
	}
	if err := admin.Topics().SetMaxProducers(tn, 2); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxProducers(tn); err != nil || v != 2 {
		t.Fatalf("max producers: %d %v", v, err)
	}
	if err := admin.Topics().SetMaxConsumers(tn, 3); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxConsumers(tn); err != nil || v != 3 {
		t.Fatalf("max consumers: %d %v", v, err)
	}
	if err := admin.Topics().SetMaxConsumersPerSubscription(tn, 4); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxConsumersPerSubscription(tn); err != nil || v != 4 {
		t.Fatalf("max consumers per subscription: %d %v", v, err)
	}
	if err := admin.Topics().SetDeduplicationStatus(tn, true); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetDeduplicationStatus(tn); err != nil || !v {
		t.Fatalf("deduplication: %v %v", v, err)
	}
	if err := admin.Topics().RemoveDeduplicationStatus(tn); err != nil {
		t.Fatal(err)
	}
	if v, err := scoped.GetDeduplicationStatus(ctx, tn, false); err != nil || v != nil {
		t.Fatalf("removed deduplication: %v %v", v, err)
	}

	// Deleting the topic deletes its policies: a new topic of the same name starts clean.
	if err := admin.Topics().Delete(tn, true, true); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().Create(tn, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := scoped.GetMaxProducers(ctx, tn, false); err != nil || v != nil {
		t.Fatalf("max producers of a recreated topic: %v %v", v, err)
	}
	if r, err := admin.Topics().GetRetention(tn, false); err != nil || r != nil {
		t.Fatalf("retention of a recreated topic: %+v %v", r, err)
	}
}

func TestTopicPolicyBadInput(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "bad")[0]
	tn := topicName(t, topic)
	base := restTopic(s.WebURL(), topic)

	err := admin.Topics().SetMessageTTL(topicName(t, "persistent://"+ns+"/missing"), 5)
	expectStatus(t, err, http.StatusNotFound, "TTL of a missing topic")
	_, err = admin.Topics().GetMaxProducers(topicName(t, "persistent://public/nope/x"))
	expectStatus(t, err, http.StatusNotFound, "policy of a topic in a missing namespace")
	expectStatus(t, admin.Topics().SetMessageTTL(tn, -1), http.StatusPreconditionFailed, "negative TTL")
	expectStatus(t, admin.Topics().SetMaxProducers(tn, -2), http.StatusPreconditionFailed, "negative max producers")
	expectStatus(t, admin.Topics().SetRetention(tn, utils.RetentionPolicies{RetentionTimeInMinutes: 0, RetentionSizeInMB: 5}),
		http.StatusPreconditionFailed, "retention with one limit 0")
	expectHTTP(t, "POST", base+"/messageTTL?messageTTL=abc", "", http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/messageTTL", "", http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/maxProducers", `"many"`, http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/retention", `{"retentionTimeInMinutes": "x"}`, http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/deduplicationEnabled", `{`, http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/backlogQuota?backlogQuotaType=bogus", `{"limitSize": 1, "policy": "producer_exception"}`, http.StatusBadRequest)
	expectHTTP(t, "POST", base+"/backlogQuota", `{"limitSize": 1, "policy": "drop_everything"}`, http.StatusBadRequest)
	expectHTTP(t, "GET", base+"/messageTTL?applied=maybe", "", http.StatusBadRequest)
	expectHTTP(t, "GET", restTopic(s.WebURL(), "persistent://"+ns+"/bad%01name")+"/messageTTL", "", http.StatusPreconditionFailed)
	// The message TTL also comes as a body, and as pulsar-admin sends it.
	expectHTTP(t, "POST", base+"/messageTTL", "9", http.StatusNoContent)
	if body := expectHTTP(t, "GET", base+"/messageTTL", "", http.StatusOK); strings.TrimSpace(body) != "9" {
		t.Fatalf("TTL set from a body: %q", body)
	}
}

// sendPayloads sends payloads of size bytes and fails on any error.
func sendPayloads(t *testing.T, p pulsar.Producer, n, size int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: make([]byte, size)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

// leaveBacklog subscribes s to each topic and disconnects, so that what
// is sent next stays as backlog.
func leaveBacklog(t *testing.T, client pulsar.Client, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

func TestTopicPolicyMessageTTLExpiresBacklog(t *testing.T) {
	s, ns := policyServer(t, `{}`) // no TTL in the namespace
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "ttl", "kept")
	if err := admin.Topics().SetMessageTTL(topicName(t, topics[0]), 1); err != nil {
		t.Fatal(err)
	}
	leaveBacklog(t, client, topics...)
	sent := time.Now()
	for _, topic := range topics {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		sendN(t, p, 0, 5)
		p.Close()
	}
	eventually(t, "the topic's TTL to expire its backlog", func() bool { return metricValue(t, s.WebURL(), backlogSeries(ns, topics[0])) == 0 })
	if time.Since(sent) < time.Second {
		t.Fatal("backlog expired before the TTL")
	}
	// Several enforcement rounds later, the other topic keeps its backlog.
	time.Sleep(300 * time.Millisecond) // absence of an effect is only observable by waiting
	if v := metricValue(t, s.WebURL(), backlogSeries(ns, topics[1])); v != 5 {
		t.Fatalf("backlog of the topic without TTL: %v, want 5", v)
	}
}

func TestTopicPolicyMaxProducers(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "limited", "free")
	limited := topicName(t, topics[0])
	if err := admin.Topics().SetMaxProducers(limited, 1); err != nil {
		t.Fatal(err)
	}
	p1, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topics[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	secondRefused := func() bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topics[0]})
		if err == nil {
			p.Close()
			return false
		}
		if !strings.Contains(err.Error(), "ProducerBusy") {
			t.Fatalf("second producer: %v", err)
		}
		return true
	}
	eventually(t, "the second producer to be refused", secondRefused)
	// The other topic of the namespace takes any number.
	for i := 0; i < 2; i++ {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topics[1]})
		if err != nil {
			t.Fatalf("producer %d on the other topic: %v", i, err)
		}
		defer p.Close()
	}
	// Removing the topic's limit falls back to the namespace's (none)...
	if err := admin.Topics().RemoveMaxProducers(limited); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second producer to be accepted", func() bool { return !secondRefused() })
	// ...and a namespace limit applies again once the topic has none.
	if err := admin.Namespaces().SetMaxProducersPerTopic(nsName(t, ns), 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the namespace's limit to apply", secondRefused)
	// A topic limit above the namespace's wins over it.
	if err := admin.Topics().SetMaxProducers(limited, 2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the topic's higher limit to apply", func() bool { return !secondRefused() })
}

func TestTopicPolicyMaxConsumers(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "limited", "persub")
	if err := admin.Topics().SetMaxConsumers(topicName(t, topics[0]), 1); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().SetMaxConsumersPerSubscription(topicName(t, topics[1]), 1); err != nil {
		t.Fatal(err)
	}
	c1, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topics[0], SubscriptionName: "a", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	refused := func(topic, sub string) func() bool {
		return func() bool {
			c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub, Type: pulsar.Shared})
			if err == nil {
				c.Close()
				return false
			}
			if !strings.Contains(err.Error(), "ConsumerBusy") {
				t.Fatalf("consumer on %s: %v", topic, err)
			}
			return true
		}
	}
	eventually(t, "a second consumer on the topic to be refused", refused(topics[0], "b"))
	c2, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topics[1], SubscriptionName: "a", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	eventually(t, "a second consumer on the subscription to be refused", refused(topics[1], "a"))
	c3, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topics[1], SubscriptionName: "other", Type: pulsar.Shared})
	if err != nil {
		t.Fatalf("consumer on another subscription: %v", err)
	}
	c3.Close()
}

// TestTopicPolicyRetentionOverridesNamespace: the namespace keeps consumed
// data without limit; the topic's 0/0 retention deletes it once consumed,
// and the namespace's other topic keeps it.
func TestTopicPolicyRetentionOverridesNamespace(t *testing.T) {
	s, ns := policyServer(t, `{"retention_policies": {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1}}`)
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "trimmed", "kept")
	if err := admin.Topics().SetRetention(topicName(t, topics[0]), utils.RetentionPolicies{}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
		if err != nil {
			t.Fatal(err)
		}
		producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		sendN(t, producer, 0, 10)
		for _, m := range receiveN(t, consumer, 10, 10*time.Second) {
			consumer.Ack(m)
		}
		consumer.Close()
		sendN(t, producer, 10, 1) // unconsumed: must stay
		producer.Close()
	}
	firstReadable := func(topic string) string {
		r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Payload())
	}
	eventually(t, "the topic's consumed messages to be deleted", func() bool { return firstReadable(topics[0]) == "10" })
	if got := firstReadable(topics[1]); got != "0" {
		t.Fatalf("first message of the namespace's other topic: %q, want 0 (unlimited retention)", got)
	}
}

// TestTopicPolicyBacklogQuotaOverridesNamespace: the namespace refuses
// producers beyond 100 bytes of backlog; a topic with a larger quota of its
// own accepts them; removing it falls back to the namespace's quota.
func TestTopicPolicyBacklogQuotaOverridesNamespace(t *testing.T) {
	s, ns := policyServer(t, `{"backlog_quota_map": {"destination_storage": {"limitSize": 100, "policy": "producer_exception"}}}`)
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "roomy", "tight")
	roomy := topicName(t, topics[0])
	if err := admin.Topics().SetBacklogQuota(roomy, utils.NewBacklogQuota(10<<20, 0, utils.ProducerException), utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	leaveBacklog(t, client, topics...)
	for _, topic := range topics {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		sendPayloads(t, p, 5, 100)
		p.Close()
	}
	refused := func(topic string) bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err == nil {
			p.Close()
			return false
		}
		if !strings.Contains(err.Error(), "ProducerBlockedQuotaExceededException") {
			t.Fatalf("producer on %s: %v", topic, err)
		}
		return true
	}
	eventually(t, "the namespace's quota to refuse producers", func() bool { return refused(topics[1]) })
	if refused(topics[0]) {
		t.Fatal("the topic's larger quota did not override the namespace's")
	}
	if err := admin.Topics().RemoveBacklogQuota(roomy, utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the namespace's quota to apply to the topic again", func() bool { return refused(topics[0]) })
}

func TestTopicPolicyDeduplication(t *testing.T) {
	s, ns := policyServer(t, `{}`) // deduplication off in the namespace
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topics := policyTopics(t, admin, ns, "dedup", "plain")
	// The topic is loaded already: the broker reloads it to apply the change.
	if err := admin.Topics().SetDeduplicationStatus(topicName(t, topics[0]), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deduplication to be enabled", func() bool {
		st, err := admin.Topics().GetStats(topicName(t, topics[0]))
		return err == nil && st.DeDuplicationStatus == "Enabled"
	})
	stored := map[string]int{}
	for _, topic := range topics {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "p", DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []int64{0, 1, 2, 1, 2} { // the last two are resends
			seq := seq
			if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(seq)), SequenceID: &seq}); err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		st, err := admin.Topics().GetInternalStats(topicName(t, topic))
		if err != nil {
			t.Fatal(err)
		}
		stored[topic] = int(st.NumberOfEntries)
	}
	if stored[topics[0]] != 3 || stored[topics[1]] != 5 {
		t.Fatalf("entries stored: %v, want 3 on the deduplicated topic and 5 on the other", stored)
	}
}

// TestTopicPolicyPartitioned: a partitioned topic's policies apply to its
// partitions and are deleted with it.
func TestTopicPolicyPartitioned(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/parts"
	tn := topicName(t, topic)
	if err := admin.Topics().Create(tn, 2); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().SetMaxProducers(tn, 1); err != nil {
		t.Fatal(err)
	}
	// Read back through a partition's name, as Pulsar does.
	if v, err := admin.Topics().GetMaxProducers(topicName(t, topic+"-partition-1")); err != nil || v != 1 {
		t.Fatalf("max producers read through a partition: %d %v", v, err)
	}
	p1, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic + "-partition-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	eventually(t, "a second producer on the partition to be refused", func() bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic + "-partition-1"})
		if err == nil {
			p.Close()
			return false
		}
		return strings.Contains(err.Error(), "ProducerBusy")
	})
	p1.Close()
	if err := admin.Topics().Delete(tn, true, false); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().Create(tn, 2); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxProducers(tn); err != nil || v != -1 {
		t.Fatalf("max producers of a recreated partitioned topic: %d %v", v, err)
	}
}

// TestTopicPolicyNamespaceDeleteForgetsPolicies: policies of a deleted
// namespace's topics do not come back with a new namespace of that name.
func TestTopicPolicyNamespaceDeleteForgetsPolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	topic := policyTopics(t, admin, ns, "x")[0]
	if err := admin.Topics().SetMessageTTL(topicName(t, topic), 30); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "DELETE", s.WebURL()+"/admin/v2/namespaces/"+ns+"?force=true", "", http.StatusNoContent)
	if err := admin.Namespaces().CreateNamespace(ns); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().Create(topicName(t, topic), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMessageTTL(topicName(t, topic)); err != nil || v != -1 {
		t.Fatalf("TTL after the namespace was recreated: %d %v", v, err)
	}
}
