package test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/messagebus/messagebus/server"
	"google.golang.org/protobuf/proto"
)

func TestProducerAccessModes(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	mk := func(mode pulsar.ProducerAccessMode) (pulsar.Producer, error) {
		return client.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: mode, SendTimeout: 5 * time.Second})
	}
	first, err := mk(pulsar.ProducerAccessModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mk(pulsar.ProducerAccessModeExclusive); err == nil || !strings.Contains(err.Error(), "ProducerFenced") ||
		!strings.Contains(err.Error(), "Topic has an existing exclusive producer: "+first.Name()) {
		t.Fatalf("second exclusive producer: %v", err)
	}
	if _, err := mk(pulsar.ProducerAccessModeShared); err == nil || !strings.Contains(err.Error(), "ProducerBusy") {
		t.Fatalf("shared producer next to an exclusive one: %v", err)
	}
	waiter := make(chan pulsar.Producer, 1)
	go func() {
		p, err := mk(pulsar.ProducerAccessModeWaitForExclusive)
		if err != nil {
			t.Error(err)
		}
		waiter <- p
	}()
	// The waiting producer cannot be ready while the first one holds the
	// topic; its PRODUCER was answered with producer_ready=false.
	waitMetric(t, s.WebURL(), "pulsar_broker_producers_count 1")
	select {
	case <-waiter:
		t.Fatal("WaitForExclusive producer ready while the topic is held")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case p := <-waiter:
		if p == nil {
			t.FailNow()
		}
		defer p.Close()
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("mine now")}); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitForExclusive producer never became ready")
	}
}

// rawProducer opens a raw connection with a named producer and returns it
// with the last_sequence_id the broker reported.
func rawProducer(t *testing.T, brokerURL, topic, name string) (*rawConn, int64) {
	t.Helper()
	c := dialRaw(t, brokerURL)
	c.connect()
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(1), ProducerName: proto.String(name)}})
	r := c.read()
	if r.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("producer: %v", r)
	}
	return c, r.GetProducerSuccess().GetLastSequenceId()
}

func (c *rawConn) sendSeq(seq uint64) *pb.CommandSendReceipt {
	c.t.Helper()
	hp := payloadWith("dedup-p", seq, fmt.Sprint("m", seq))
	c.nc.Write(sendFrame(1, seq, hp))
	r := c.read()
	if r.GetType() != pb.BaseCommand_SEND_RECEIPT {
		c.t.Fatalf("send %d: %v", seq, r)
	}
	return r.GetSendReceipt()
}

// TestDeduplicationSurvivesKill: with deduplication on, a producer that
// resends after a broker crash gets receipts for what was stored, and
// nothing is stored twice.
func TestDeduplicationSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	if code, body := httpDo(t, "POST", p.webURL+"/admin/v2/namespaces/public/default/deduplication", "true"); code != 204 {
		t.Fatalf("enable deduplication: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", p.webURL+"/admin/v2/namespaces/public/default/deduplication", ""); code != 200 || strings.TrimSpace(body) != "true" {
		t.Fatalf("read deduplication: %d %s", code, body)
	}
	topic := uniqueTopic(t)
	c, last := rawProducer(t, p.brokerURL, topic, "dedup-p")
	if last != -1 {
		t.Fatalf("new producer last_sequence_id %d", last)
	}
	for seq := uint64(0); seq < 5; seq++ {
		if r := c.sendSeq(seq); int64(r.GetMessageId().GetEntryId()) < 0 {
			t.Fatalf("first send of %d not stored: %v", seq, r)
		}
	}
	if r := c.sendSeq(4); int64(r.GetMessageId().GetEntryId()) != -1 {
		t.Fatalf("duplicate on the same connection stored: %v", r)
	}
	p.kill(t)

	p2 := startProc(t, dir, p.brokerPort, p.httpPort)
	c2, last := rawProducer(t, p2.brokerURL, topic, "dedup-p")
	if last != 4 {
		t.Fatalf("after kill -9 last_sequence_id %d, want 4", last)
	}
	for _, seq := range []uint64{3, 4} {
		if r := c2.sendSeq(seq); int64(r.GetMessageId().GetEntryId()) != -1 || r.GetSequenceId() != seq {
			t.Fatalf("resend of %d after restart: %v", seq, r)
		}
	}
	if r := c2.sendSeq(5); int64(r.GetMessageId().GetEntryId()) < 0 {
		t.Fatalf("new message after restart not stored: %v", r)
	}
	client := newClient(t, p2.brokerURL)
	reader, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for reader.HasNext() {
		m, err := reader.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload()))
	}
	if fmt.Sprint(got) != "[m0 m1 m2 m3 m4 m5]" {
		t.Fatalf("stored %v, want each message once", got)
	}
}

func TestChunkedMessages(t *testing.T) {
	s := startServer(t, server.Options{MaxMessageSize: 1 << 20})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, EnableChunking: true, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: big}); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, consumer, 1, 20*time.Second)[0]
	if !bytes.Equal(m.Payload(), big) {
		t.Fatalf("reassembled %d bytes, sent %d (or content differs)", len(m.Payload()), len(big))
	}
	consumer.Ack(m)
}

func TestZeroQueueConsumer(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "z", EnableZeroQueueConsumer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sendN(t, producer, 0, 5)
	for i := 0; i < 5; i++ {
		m := receiveN(t, consumer, 1, 10*time.Second)[0]
		if string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("zero-queue consumer got %q, want %d", m.Payload(), i)
		}
		consumer.Ack(m)
	}
}

func TestBatchIndexAck(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	sub := func() pulsar.Consumer {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "b", Type: pulsar.Shared,
			EnableBatchIndexAcknowledgment: true, AckWithResponse: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	consumer := sub()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Second, BatchingMaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx := context.Background()
	done := make(chan error, 10)
	for i := 0; i < 10; i++ {
		producer.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { done <- err })
	}
	for i := 0; i < 10; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	msgs := receiveN(t, consumer, 10, 10*time.Second)
	if msgs[0].ID().EntryID() != msgs[9].ID().EntryID() {
		t.Fatal("messages were not batched into one entry")
	}
	for _, m := range msgs {
		var i int
		fmt.Sscan(string(m.Payload()), &i)
		if i%2 == 0 {
			if err := consumer.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	consumer.Close()
	again := sub()
	defer again.Close()
	got := receiveN(t, again, 5, 10*time.Second)
	if payloads(got) != "[1 3 5 7 9]" {
		t.Fatalf("after partial batch ack got %s, want only the unacked [1 3 5 7 9]", payloads(got))
	}
}

func TestDeadLetterTopic(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	dlq := topic + "-my-dlq"
	dlqConsumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "dlq",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer dlqConsumer.Close()
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		NackRedeliveryDelay: 20 * time.Millisecond,
		DLQ:                 &pulsar.DLQPolicy{MaxDeliveries: 3, DeadLetterTopic: dlq}})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("poison")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		consumer.Nack(receiveN(t, consumer, 1, 10*time.Second)[0])
	}
	m := receiveN(t, dlqConsumer, 1, 20*time.Second)[0]
	if string(m.Payload()) != "poison" {
		t.Fatalf("DLQ got %q", m.Payload())
	}
	dlqConsumer.Ack(m)
}

// An Exclusive producer on a topic with shared producers is fenced, as in
// Pulsar (not busy: the client must not retry it).
func TestExclusiveProducerNextToShared(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	shared, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	_, err = client.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
	if err == nil || !strings.Contains(err.Error(), "ProducerFenced") || !strings.Contains(err.Error(), "Topic has existing shared producers") {
		t.Fatalf("exclusive producer next to a shared one: %v", err)
	}
}
