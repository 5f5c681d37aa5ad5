package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// A dead-letter producer's initial_subscription_name creates that durable
// subscription on the DLQ topic at the earliest entry, so messages routed
// there before anyone subscribed are kept for it (as Pulsar).
func TestDeadLetterInitialSubscription(t *testing.T) {
	s := startServer(t, server.Options{})
	c := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	dlq := topic + "-DLQ"
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: pulsar.Shared,
		NackRedeliveryDelay: 100 * time.Millisecond,
		DLQ:                 &pulsar.DLQPolicy{MaxDeliveries: 1, DeadLetterTopic: dlq, InitialSubscriptionName: "init-sub"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 5
	for i := 0; i < n; i++ {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("m%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ { // one delivery each, then the DLQ
		m := receiveN(t, cons, 1, 10*time.Second)[0]
		cons.Nack(m)
	}
	name, _ := utils.GetTopicName(dlq)
	admin := newAdmin(t, s)
	// The dead-letter producer batches: the backlog counts entries.
	eventually(t, "the DLQ has its initial subscription with a backlog", func() bool {
		st, err := admin.Topics().GetStats(*name)
		return err == nil && st.Subscriptions["init-sub"].MsgBacklog > 0
	})
	dl, err := c.Subscribe(pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "init-sub"})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if got := receiveN(t, dl, n, 10*time.Second); len(got) != n {
		t.Fatalf("received %d from the DLQ", len(got))
	}
}
