package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

func TestDelayedDeliveryShared(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "d", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	start := time.Now()
	ctx := context.Background()
	for i, delay := range []time.Duration{800 * time.Millisecond, 0, 400 * time.Millisecond} {
		if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i)), DeliverAfter: delay}); err != nil {
			t.Fatal(err)
		}
	}
	got := receiveN(t, consumer, 3, 10*time.Second)
	if payloads(got) != "[1 2 0]" {
		t.Fatalf("delivery order %s, want [1 2 0] (by due time)", payloads(got))
	}
	// deliver_at_time has millisecond resolution: allow for its truncation.
	if since := time.Since(start); since < 798*time.Millisecond {
		t.Fatalf("message delayed 800ms arrived after %v", since)
	}
	for _, m := range got {
		consumer.Ack(m)
	}
}
