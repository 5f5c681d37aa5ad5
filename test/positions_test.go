package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

func TestInitialPositionUnsubscribeAndInclusiveReader(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 3)

	subscribe := func(name string, pos pulsar.SubscriptionInitialPosition) pulsar.Consumer {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: name, SubscriptionInitialPosition: pos})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	latest := subscribe("latest", pulsar.SubscriptionPositionLatest)
	earliest := subscribe("earliest", pulsar.SubscriptionPositionEarliest)
	sendN(t, producer, 3, 1)
	if got := receiveN(t, latest, 1, 10*time.Second); payloads(got) != "[3]" {
		t.Fatalf("latest subscription got %s first, want [3]", payloads(got))
	}
	if got := receiveN(t, earliest, 4, 10*time.Second); payloads(got) != "[0 1 2 3]" {
		t.Fatalf("earliest subscription got %s", payloads(got))
	}
	earliest.Close()

	// Unsubscribe deletes the subscription: subscribing again at latest starts fresh.
	if err := latest.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	latest.Close()
	again := subscribe("latest", pulsar.SubscriptionPositionLatest)
	defer again.Close()
	expectNoMessage(t, again, 200*time.Millisecond)

	reader, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[1], StartMessageIDInclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := reader.Next(ctx)
	if err != nil || string(m.Payload()) != "1" {
		t.Fatalf("inclusive reader first message: %v %v", m, err)
	}
}

func TestPartitionedTopicGrows(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	path := s.WebURL() + strings.Replace(topic, "persistent://", "/admin/v2/persistent/", 1) + "/partitions"
	if code, body := httpDo(t, "POST", path, "4"); code != 404 {
		t.Fatalf("grow before create: %d %s", code, body)
	}
	if code, body := httpDo(t, "PUT", path, "2"); code != 204 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := httpDo(t, "POST", path, "1"); code < 400 {
		t.Fatalf("shrink accepted: %d %s", code, body)
	}
	if code, body := httpDo(t, "POST", path, "4"); code != 204 {
		t.Fatalf("grow: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", path, ""); code != 200 || strings.TrimSpace(body) != `{"partitions":4}` {
		t.Fatalf("get: %d %s", code, body)
	}
	client := newClient(t, s.BrokerURL())
	parts, err := client.TopicPartitions(topic)
	if err != nil || len(parts) != 4 {
		t.Fatalf("client sees partitions %v %v", parts, err)
	}
}
