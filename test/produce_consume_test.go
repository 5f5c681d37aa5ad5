package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

func TestProduceConsume(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	cases := []struct {
		name        string
		subType     pulsar.SubscriptionType
		batching    bool
		compression pulsar.CompressionType
	}{
		{"exclusive-nobatch", pulsar.Exclusive, false, pulsar.NoCompression},
		{"exclusive-batch", pulsar.Exclusive, true, pulsar.NoCompression},
		{"exclusive-batch-lz4", pulsar.Exclusive, true, pulsar.LZ4},
		{"exclusive-batch-zstd", pulsar.Exclusive, true, pulsar.ZSTD},
		{"shared-nobatch-zstd", pulsar.Shared, false, pulsar.ZSTD},
		{"shared-batch-lz4", pulsar.Shared, true, pulsar.LZ4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniqueTopic(t)
			consumer, err := client.Subscribe(pulsar.ConsumerOptions{
				Topic: topic, SubscriptionName: "sub", Type: tc.subType,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			producer, err := client.CreateProducer(pulsar.ProducerOptions{
				Topic:                   topic,
				DisableBatching:         !tc.batching,
				CompressionType:         tc.compression,
				BatchingMaxPublishDelay: 5 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()

			const n = 500
			ctx := context.Background()
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				producer.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("msg-%04d", i))},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
			}
			for i := 0; i < n; i++ {
				if err := <-errs; err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			msgs := receiveN(t, consumer, n, 20*time.Second)
			for i, m := range msgs {
				if want := fmt.Sprintf("msg-%04d", i); string(m.Payload()) != want {
					t.Fatalf("message %d = %q, want %q (order or content broken)", i, m.Payload(), want)
				}
				if err := consumer.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
			expectNoMessage(t, consumer, 200*time.Millisecond)
		})
	}
}

func TestKeysPropertiesEventTimeRoundTrip(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	eventTime := time.UnixMilli(1700000000123)
	sent, err := producer.Send(context.Background(), &pulsar.ProducerMessage{
		Payload:     []byte("hello"),
		Key:         "order-42",
		OrderingKey: "okey",
		Properties:  map[string]string{"a": "1", "b": "two"},
		EventTime:   eventTime,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, consumer, 1, 10*time.Second)[0]
	if string(m.Payload()) != "hello" || m.Key() != "order-42" || m.OrderingKey() != "okey" {
		t.Fatalf("payload/key mismatch: %q %q %q", m.Payload(), m.Key(), m.OrderingKey())
	}
	if m.Properties()["a"] != "1" || m.Properties()["b"] != "two" || len(m.Properties()) != 2 {
		t.Fatalf("properties: %v", m.Properties())
	}
	if !m.EventTime().Equal(eventTime) {
		t.Fatalf("event time %v, want %v", m.EventTime(), eventTime)
	}
	if m.PublishTime().IsZero() || m.ProducerName() == "" {
		t.Fatalf("publish time %v producer %q", m.PublishTime(), m.ProducerName())
	}
	if m.ID().LedgerID() != sent.LedgerID() || m.ID().EntryID() != sent.EntryID() {
		t.Fatalf("received id %v, send receipt id %v", m.ID(), sent)
	}
}

func TestSharedSpreadsAndRedeliversOnDisconnect(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	sub := func() pulsar.Consumer {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "shared", Type: pulsar.Shared, ReceiverQueueSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1, c2 := sub(), sub()
	defer c2.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// c1 takes some messages and leaves without acking them: they must reach c2.
	got1 := receiveN(t, c1, 5, 10*time.Second)
	c1.Close()
	seen := map[string]int{}
	for _, m := range got1 {
		seen[string(m.Payload())]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	redelivered := 0
	for len(seen) < n {
		m, err := c2.Receive(ctx)
		if err != nil {
			t.Fatalf("c2 got %d distinct of %d: %v", len(seen), n, err)
		}
		if seen[string(m.Payload())] > 0 {
			redelivered++
			if m.RedeliveryCount() == 0 {
				t.Fatalf("redelivered message %q has redelivery count 0", m.Payload())
			}
		}
		seen[string(m.Payload())]++
		c2.Ack(m)
	}
	if redelivered < len(got1) {
		t.Fatalf("only %d of c1's %d unacked messages were redelivered", redelivered, len(got1))
	}
}

func TestNackRedeliveryCount(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, NackRedeliveryDelay: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for want := uint32(0); want < 3; want++ {
		m := receiveN(t, consumer, 1, 10*time.Second)[0]
		if m.RedeliveryCount() != want {
			t.Fatalf("delivery %d: redelivery count %d", want, m.RedeliveryCount())
		}
		consumer.Nack(m)
	}
	m := receiveN(t, consumer, 1, 10*time.Second)[0]
	consumer.Ack(m)
}

func TestNonPersistentTopic(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := fmt.Sprintf("non-persistent://public/default/np-%d", time.Now().UnixNano())
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := 0; i < 20; i++ {
		if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range receiveN(t, consumer, 20, 10*time.Second) {
		if string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, m.Payload())
		}
		consumer.Ack(m)
	}
	// A subscription created later does not see earlier messages: nothing is stored.
	late, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "late",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	expectNoMessage(t, late, 200*time.Millisecond)
}

func TestReaderAndLastMessageID(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var ids []pulsar.MessageID
	for i := 0; i < 10; i++ {
		id, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	reader, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[4]})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for want := 5; want < 10; want++ {
		if !reader.HasNext() {
			t.Fatalf("HasNext false before message %d", want)
		}
		m, err := reader.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != fmt.Sprint(want) {
			t.Fatalf("reader got %q, want %d", m.Payload(), want)
		}
	}
	if reader.HasNext() {
		t.Fatal("HasNext true at the end of the topic")
	}
	earliest, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer earliest.Close()
	m, err := earliest.Next(ctx)
	if err != nil || string(m.Payload()) != "0" {
		t.Fatalf("earliest reader: %v %v", m, err)
	}
}
