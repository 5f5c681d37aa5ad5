package test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

func sendN(t *testing.T, p pulsar.Producer, from, n int) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, 0, n)
	for i := from; i < from+n; i++ {
		id, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

func payloads(ms []pulsar.Message) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload())
	}
	return fmt.Sprint(out)
}

func TestFailoverTakesOverFromLastAck(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	sub := func(name string) pulsar.Consumer {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "fo", Type: pulsar.Failover, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := sub("a-consumer") // sorts first: active
	b := sub("b-consumer")
	defer b.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sendN(t, producer, 0, 10)
	got := receiveN(t, a, 10, 10*time.Second)
	for _, m := range got[:4] {
		a.Ack(m)
	}
	expectNoMessage(t, b, 200*time.Millisecond) // the standby gets nothing
	a.Close()
	got = receiveN(t, b, 6, 10*time.Second)
	if payloads(got) != "[4 5 6 7 8 9]" {
		t.Fatalf("standby took over with %s, want [4 5 6 7 8 9]", payloads(got))
	}
}

func TestSeekByMessageIDAndTime(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	// The broker positions at the sought entry; the Go client then drops the
	// sought message itself unless StartMessageIDInclusive is set.
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "seek", StartMessageIDInclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 5)
	// Publish times are in milliseconds: make sure the second group is strictly later.
	time.Sleep(5 * time.Millisecond)
	mid := time.Now()
	sendN(t, producer, 5, 5)
	for _, m := range receiveN(t, consumer, 10, 10*time.Second) {
		consumer.Ack(m)
	}
	if err := consumer.Seek(ids[2]); err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, consumer, 8, 10*time.Second)
	if payloads(got) != "[2 3 4 5 6 7 8 9]" {
		t.Fatalf("after seek to id of 2: %s", payloads(got))
	}
	for _, m := range got {
		consumer.Ack(m)
	}
	if err := consumer.SeekByTime(mid); err != nil {
		t.Fatal(err)
	}
	got = receiveN(t, consumer, 5, 10*time.Second)
	if payloads(got) != "[5 6 7 8 9]" {
		t.Fatalf("after seek by time: %s", payloads(got))
	}
}

func TestRegexSubscriptionFindsExistingAndNewTopics(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	base := fmt.Sprintf("persistent://public/default/rx-%d", time.Now().UnixNano())
	produce := func(topic, payload string) {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	produce(base+"-a", "warm-up") // the topic exists before the consumer
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{
		TopicsPattern: regexp.QuoteMeta(base) + "-.*", SubscriptionName: "rx",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		AutoDiscoveryPeriod:         100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if m := receiveN(t, consumer, 1, 10*time.Second)[0]; string(m.Payload()) != "warm-up" {
		t.Fatalf("existing topic: %q", m.Payload())
	}
	produce(base+"-b", "new topic") // discovered by the periodic GET_TOPICS_OF_NAMESPACE
	if m := receiveN(t, consumer, 1, 20*time.Second)[0]; string(m.Payload()) != "new topic" || m.Topic() != base+"-b" {
		t.Fatalf("new topic: %q from %s", m.Payload(), m.Topic())
	}
}
