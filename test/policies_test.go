package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// policyServer runs a broker that enforces policies every 100 ms and
// creates a namespace with the given policies JSON.
func policyServer(t *testing.T, policies string) (*server.Server, string) {
	t.Helper()
	s := startServer(t, server.Options{PolicyCheckInterval: 100 * time.Millisecond})
	ns := fmt.Sprintf("public/p%d", time.Now().UnixNano())
	if code, body := httpDo(t, "PUT", s.WebURL()+"/admin/v2/namespaces/"+ns, policies); code != 204 {
		t.Fatalf("create namespace: %d %s", code, body)
	}
	return s, ns
}

// metricValue reads one sample of /metrics; -1 when absent.
func metricValue(t *testing.T, webURL, series string) float64 {
	t.Helper()
	_, body := httpDo(t, "GET", webURL+"/metrics", "")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// eventually polls cond: policy enforcement runs on the broker's own timer
// and its effects are only observable from outside by asking.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func backlogSeries(ns, topic string) string {
	return fmt.Sprintf(`pulsar_msg_backlog{cluster="standalone",namespace="%s",topic="%s"}`, ns, topic)
}

func TestMessageTTLExpiresBacklog(t *testing.T) {
	s, ns := policyServer(t, `{"message_ttl_in_seconds": 1}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/ttl"
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // the durable subscription stays, with a backlog
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sent := time.Now()
	sendN(t, producer, 0, 5)
	series := backlogSeries(ns, topic)
	eventually(t, "backlog of 5", func() bool { return metricValue(t, s.WebURL(), series) == 5 })
	eventually(t, "TTL to expire the backlog", func() bool { return metricValue(t, s.WebURL(), series) == 0 })
	if time.Since(sent) < time.Second {
		t.Fatal("backlog expired before the TTL")
	}
	c2, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	expectNoMessage(t, c2, 200*time.Millisecond)
}

func TestRetentionDeletesConsumedData(t *testing.T) {
	s, ns := policyServer(t, `{"retention_policies": {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/ret"
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sendN(t, producer, 0, 10)
	for _, m := range receiveN(t, consumer, 10, 10*time.Second) {
		consumer.Ack(m)
	}
	consumer.Close()
	sendN(t, producer, 10, 3) // unconsumed: must stay
	firstReadable := func() string {
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
	eventually(t, "consumed messages to be deleted", func() bool { return firstReadable() == "10" })
}

func TestBacklogQuotaProducerException(t *testing.T) {
	s, ns := policyServer(t, `{"backlog_quota_map": {"destination_storage": {"limitSize": 100, "policy": "producer_exception"}}}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/quota"
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: make([]byte, 100)})
	}
	producer.Close()
	eventually(t, "producers to be refused", func() bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err == nil {
			p.Close()
			return false
		}
		if !strings.Contains(err.Error(), "ProducerBlockedQuotaExceededException") {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	})
	// Consuming the backlog lifts the block.
	c2, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, m := range receiveN(t, c2, 5, 10*time.Second) {
		c2.Ack(m)
	}
	eventually(t, "producers to be accepted again", func() bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			return false
		}
		p.Close()
		return true
	})
}

func TestBacklogQuotaConsumerEviction(t *testing.T) {
	s, ns := policyServer(t, `{"backlog_quota_map": {"destination_storage": {"limitSize": 20000, "policy": "consumer_backlog_eviction"}}}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/evict"
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := 0; i < 100; i++ {
		if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("%04d%s", i, strings.Repeat("x", 996)))}); err != nil {
			t.Fatal(err)
		}
	}
	series := backlogSeries(ns, topic)
	eventually(t, "the backlog to be evicted under the quota", func() bool {
		v := metricValue(t, s.WebURL(), series)
		return v >= 0 && v <= 20
	})
	c2, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	m := receiveN(t, c2, 1, 10*time.Second)[0]
	if string(m.Payload()[:4]) < "0080" {
		t.Fatalf("oldest message after eviction is %q, expected only the newest ones", m.Payload()[:4])
	}
}

func TestMaxProducersPerTopic(t *testing.T) {
	s, ns := policyServer(t, `{"max_producers_per_topic": 1}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/limited"
	p1, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	if _, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "ProducerBusy") {
		t.Fatalf("second producer: %v", err)
	}
}

// TestBacklogQuotaMessageAgeHold: a backlog older than the message_age quota
// with producer_request_hold refuses producers with the retriable error.
func TestBacklogQuotaMessageAgeHold(t *testing.T) {
	s, ns := policyServer(t, `{"backlog_quota_map": {"message_age": {"limitTime": 1, "policy": "producer_request_hold"}}}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/age"
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	sendN(t, producer, 0, 3)
	producer.Close()
	eventually(t, "producers to be held", func() bool {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: time.Second})
		if err == nil {
			p.Close()
			return false
		}
		if !strings.Contains(err.Error(), "ProducerBlockedQuotaExceededError") {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	})
	if time.Since(sent) < time.Second {
		t.Fatal("producers held before the backlog reached the age limit")
	}
}

func TestMaxConsumersPerTopic(t *testing.T) {
	s, ns := policyServer(t, `{"max_consumers_per_topic": 1}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/limited"
	c1, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "a", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "b"}); err == nil || !strings.Contains(err.Error(), "ConsumerBusy") {
		t.Fatalf("second consumer: %v", err)
	}
}

func TestAutoTopicCreationOverride(t *testing.T) {
	s, ns := policyServer(t, `{"autoTopicCreationOverride": {"allowAutoTopicCreation": false}}`)
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/explicit"
	if _, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "TopicNotFound") {
		t.Fatalf("producer on a missing topic with auto creation off: %v", err)
	}
	if _, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"}); err == nil {
		t.Fatal("consumer on a missing topic with auto creation off was accepted")
	}
	path := s.WebURL() + strings.Replace(topic, "persistent://", "/admin/v2/persistent/", 1)
	if code, body := httpDo(t, "PUT", path, ""); code != 204 {
		t.Fatalf("create topic: %d %s", code, body)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatalf("producer on a created topic: %v", err)
	}
	p.Close()

	s2, ns2 := policyServer(t, `{"autoTopicCreationOverride": {"allowAutoTopicCreation": true, "topicType": "partitioned", "defaultNumPartitions": 3}}`)
	client2 := newClient(t, s2.BrokerURL())
	parts, err := client2.TopicPartitions("persistent://" + ns2 + "/auto")
	if err != nil || len(parts) != 3 {
		t.Fatalf("auto-created partitioned topic: %v %v", parts, err)
	}
}
