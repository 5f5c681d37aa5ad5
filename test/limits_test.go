package test

// The limit policies: unacked messages per consumer and subscription,
// subscriptions per topic, message size per topic, topics per namespace;
// and the policies kept for tools (properties, persistence).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

func TestMaxUnackedMessagesOnConsumerBlocksDispatch(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "unacked")[0]
	if err := admin.Topics().SetMaxUnackMessagesPerConsumer(topicName(t, topic), 10); err != nil {
		t.Fatal(err)
	}
	client := newClient(t, s.BrokerURL())
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < 30; i++ {
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// The consumer holds 10 unacked messages: nothing more comes.
	got := receiveN(t, cons, 10, 10*time.Second)
	expectNoMessage(t, cons, 500*time.Millisecond)
	// Acking 4 leaves 6, above half of the limit: still blocked.
	for _, m := range got[:4] {
		cons.Ack(m)
	}
	expectNoMessage(t, cons, 500*time.Millisecond)
	// One more brings it to 5, half the limit: dispatch resumes.
	cons.Ack(got[4])
	more := receiveN(t, cons, 5, 10*time.Second)
	if string(more[0].Payload()) != "10" {
		t.Fatalf("after unblocking got %q, want the 11th message", more[0].Payload())
	}
	st, err := admin.Topics().GetStats(topicName(t, topic))
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Subscriptions["s"].Consumers; len(c) != 1 || c[0].UnAckedMessages != 10 || !c[0].BlockedConsumerOnUnAckedMsgs {
		t.Fatalf("consumer stats: %+v", c)
	}
}

func TestMaxUnackedMessagesPerSubscriptionBlocksAllConsumers(t *testing.T) {
	s, ns := policyServer(t, `{"max_unacked_messages_per_subscription": 8}`)
	topic := "persistent://" + ns + "/subunacked"
	client := newClient(t, s.BrokerURL())
	var consumers []pulsar.Consumer
	for i := 0; i < 2; i++ {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		consumers = append(consumers, c)
	}
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < 20; i++ {
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// Both consumers together get 8.
	msgs := make(chan pulsar.ConsumerMessage, 100)
	for _, c := range consumers {
		go func(c pulsar.Consumer) {
			for m := range c.Chan() {
				msgs <- m
			}
		}(c)
	}
	var got []pulsar.ConsumerMessage
	for len(got) < 8 {
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of 8", len(got))
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("message %q past the subscription's limit", m.Payload())
	case <-time.After(500 * time.Millisecond):
	}
	for _, m := range got[:4] {
		m.Consumer.Ack(m.Message)
	}
	select {
	case <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("dispatch did not resume at half the limit")
	}
}

func TestMaxSubscriptionsPerTopic(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "subs")[0]
	tn := topicName(t, topic)
	if err := admin.Topics().SetMaxSubscriptionsPerTopic(tn, 2); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxSubscriptionsPerTopic(tn); err != nil || v != 2 {
		t.Fatalf("get: %d %v", v, err)
	}
	client := newClient(t, s.BrokerURL())
	for _, name := range []string{"a", "b"} {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: name})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	_, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "c"})
	if err == nil || !strings.Contains(err.Error(), "Exceed the maximum number of subscriptions") {
		t.Fatalf("third subscription: %v", err)
	}
	// An existing subscription may still be joined.
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestTopicMaxMessageSize(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "size")[0]
	tn := topicName(t, topic)
	if v, err := admin.Topics().GetMaxMessageSize(tn); err != nil || v != -1 {
		t.Fatalf("unset: %d %v", v, err)
	}
	client := newClient(t, s.BrokerURL())
	// The Go client drops a producer that gets NotAllowedError for a send
	// (its later sends time out), so each refusal uses its own producer
	// with a short send timeout.
	producer := func() pulsar.Producer {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	send := func(p pulsar.Producer, size int) error {
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: make([]byte, size)})
		return err
	}
	// Set while a producer is connected; that producer still sends below it.
	p1 := producer()
	if err := admin.Topics().SetMaxMessageSize(tn, 1024); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetMaxMessageSize(tn); err != nil || v != 1024 {
		t.Fatalf("get: %d %v", v, err)
	}
	if err := send(p1, 500); err != nil {
		t.Fatalf("small message: %v", err)
	}
	eventually(t, "large message refused", func() bool { return send(producer(), 2000) != nil })
	if err := admin.Topics().RemoveMaxMessageSize(tn); err != nil {
		t.Fatal(err)
	}
	if err := send(producer(), 2000); err != nil {
		t.Fatalf("large message after removal: %v", err)
	}
}

func TestMaxTopicsPerNamespace(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	nsn := nsName(t, ns)
	if err := admin.Namespaces().SetMaxTopicsPerNamespace(nsn, 3); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Namespaces().GetMaxTopicsPerNamespace(nsn); err != nil || v != 3 {
		t.Fatalf("get: %d %v", v, err)
	}
	policyTopics(t, admin, ns, "t1")
	// A partitioned topic of 2 fills the namespace (partitions count).
	if err := admin.Topics().Create(topicName(t, "persistent://"+ns+"/p"), 2); err != nil {
		t.Fatal(err)
	}
	err := admin.Topics().Create(topicName(t, "persistent://"+ns+"/t2"), 0)
	expectStatus(t, err, 412, "topic over the namespace's limit")
	client := newClient(t, s.BrokerURL())
	_, err = client.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://" + ns + "/t3"})
	if err == nil || !strings.Contains(err.Error(), "Exceed maximum number of topics") {
		t.Fatalf("implicit creation over the limit: %v", err)
	}
	// Existing topics keep working.
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://" + ns + "/t1"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

func TestNamespaceAndTopicPropertiesAndPersistence(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	nsn := nsName(t, ns)
	if err := admin.Namespaces().UpdateProperties(nsn, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().UpdateProperties(nsn, map[string]string{"b": "2"}); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Namespaces().GetProperties(nsn); err != nil || len(p) != 2 || p["a"] != "1" || p["b"] != "2" {
		t.Fatalf("namespace properties: %v %v", p, err)
	}
	if err := admin.Namespaces().RemoveProperties(nsn); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Namespaces().GetProperties(nsn); err != nil || p == nil || len(p) != 0 {
		t.Fatalf("after removal: %v %v", p, err)
	}

	if p, err := admin.Namespaces().GetPersistence(ns); err != nil || p != nil {
		t.Fatalf("unset persistence: %v %v", p, err)
	}
	bad := utils.PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 1}
	expectStatus(t, admin.Namespaces().SetPersistence(ns, bad), 400, "ensemble below write quorum")
	good := utils.PersistencePolicies{BookkeeperEnsemble: 3, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 2, ManagedLedgerMaxMarkDeleteRate: 5}
	if err := admin.Namespaces().SetPersistence(ns, good); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Namespaces().GetPersistence(ns); err != nil || p == nil || p.BookkeeperEnsemble != 3 || p.ManagedLedgerMaxMarkDeleteRate != 5 {
		t.Fatalf("persistence: %+v %v", p, err)
	}

	for _, partitions := range []int{0, 3} {
		topic := fmt.Sprintf("persistent://%s/props-%d", ns, partitions)
		tn := topicName(t, topic)
		if err := admin.Topics().CreateWithProperties(tn, partitions, map[string]string{"k1": "v1"}); err != nil {
			t.Fatal(err)
		}
		if err := admin.Topics().UpdateProperties(tn, map[string]string{"k2": "v2"}); err != nil {
			t.Fatal(err)
		}
		if err := admin.Topics().RemoveProperty(tn, "k1"); err != nil {
			t.Fatal(err)
		}
		if p, err := admin.Topics().GetProperties(tn); err != nil || len(p) != 1 || p["k2"] != "v2" {
			t.Fatalf("%d partitions: properties %v %v", partitions, p, err)
		}
	}
}

func TestLimitPolicyValidation(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	base := s.WebURL() + "/admin/v2/namespaces/" + ns + "/"
	for _, p := range []string{"maxUnackedMessagesPerConsumer", "maxUnackedMessagesPerSubscription", "maxSubscriptionsPerTopic", "maxTopicsPerNamespace"} {
		if body := expectHTTP(t, "POST", base+p, "-1", 412); !strings.Contains(body, p+" must be 0 or more") {
			t.Fatalf("%s: %s", p, body)
		}
		expectHTTP(t, "POST", base+p, `"x"`, 400)
		expectHTTP(t, "GET", base+p, "", 204)
		expectHTTP(t, "POST", base+p, "5", 204)
		if body := expectHTTP(t, "GET", base+p, "", 200); strings.TrimSpace(body) != "5" {
			t.Fatalf("%s: %s", p, body)
		}
	}
	if body := expectHTTP(t, "POST", base+"subscriptionExpirationTime", "-5", 412); !strings.Contains(body, "Invalid value for subscription expiration time") {
		t.Fatal(body)
	}
}
