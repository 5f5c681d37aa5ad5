package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// TestRetryLetterTopic: ReconsumeLater goes through the client's retry topic,
// which relies on delayed delivery on a Shared subscription.
func TestRetryLetterTopic(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "r", Type: pulsar.Shared,
		RetryEnable: true, DLQ: &pulsar.DLQPolicy{MaxDeliveries: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, consumer, 1, 10*time.Second)[0]
	start := time.Now()
	consumer.ReconsumeLater(m, 300*time.Millisecond)
	m2 := receiveN(t, consumer, 1, 20*time.Second)[0]
	if string(m2.Payload()) != "again" || time.Since(start) < 290*time.Millisecond {
		t.Fatalf("retried message %q after %v", m2.Payload(), time.Since(start))
	}
	if !strings.Contains(m2.Topic(), "RETRY") {
		t.Fatalf("retried message came from %s, want the retry topic", m2.Topic())
	}
	consumer.Ack(m2)
}

func TestMultiTopicConsumer(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	a, b := uniqueTopic(t)+"-a", uniqueTopic(t)+"-b"
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topics: []string{a, b}, SubscriptionName: "multi"})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for _, topic := range []string{a, b} {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(topic)}); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	from := map[string]bool{}
	for _, m := range receiveN(t, consumer, 2, 10*time.Second) {
		if string(m.Payload()) != m.Topic() {
			t.Fatalf("message %q reported topic %s", m.Payload(), m.Topic())
		}
		from[m.Topic()] = true
		consumer.Ack(m)
	}
	if !from[a] || !from[b] {
		t.Fatalf("messages from %v", from)
	}
}

// TestSubscriptionPropertiesPersist: properties given at subscribe time are
// stored with the cursor and shown in the topic stats, also after a restart.
func TestSubscriptionPropertiesPersist(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: p.brokerURL, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	topic := uniqueTopic(t)
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "props",
		SubscriptionProperties: map[string]string{"team": "billing"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	client.Close()
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	p2 := startProc(t, dir, p.brokerPort, p.httpPort)
	statsURL := p2.webURL + strings.Replace(topic, "persistent://", "/admin/v2/persistent/", 1) + "/stats"
	code, body := httpDo(t, "GET", statsURL, "")
	if code != 200 {
		t.Fatalf("stats: %d %s", code, body)
	}
	var stats struct {
		Subscriptions map[string]struct {
			SubscriptionProperties map[string]string `json:"subscriptionProperties"`
		} `json:"subscriptions"`
	}
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatal(err)
	}
	if got := stats.Subscriptions["props"].SubscriptionProperties["team"]; got != "billing" {
		t.Fatalf("subscription properties after restart: %v", fmt.Sprint(stats.Subscriptions))
	}
}
