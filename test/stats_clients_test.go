package test

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// Topic stats describe each producer's and consumer's client as Pulsar's
// PublisherStats and ConsumerStats do: client version, the properties the
// client sent as metadata, address and connection time.
func TestStatsDescribeClients(t *testing.T) {
	s := startServer(t, server.Options{})
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), Description: "stats-test", Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := uniqueTopic(t)
	before := time.Now().Add(-time.Second)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Properties: map[string]string{"team": "billing", "app": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Properties: map[string]string{"app": "c"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()

	name, _ := utils.GetTopicName(topic)
	st, err := newAdmin(t, s).Topics().GetStats(*name)
	if err != nil {
		t.Fatal(err)
	}
	checkClient := func(what, version, address, since string, md, want map[string]string) {
		t.Helper()
		if !strings.HasPrefix(version, "Pulsar-Go-version") || !strings.HasSuffix(version, "-stats-test") {
			t.Errorf("%s clientVersion %q", what, version)
		}
		if !strings.HasPrefix(address, "/127.0.0.1:") {
			t.Errorf("%s address %q", what, address)
		}
		at, err := time.Parse(time.RFC3339, since)
		if err != nil || at.Before(before) || at.After(time.Now()) {
			t.Errorf("%s connectedSince %q: %v", what, since, err)
		}
		if len(md) != len(want) {
			t.Errorf("%s metadata %v, want %v", what, md, want)
		}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("%s metadata %v, want %v", what, md, want)
			}
		}
	}
	if len(st.Publishers) != 1 {
		t.Fatalf("publishers %+v", st.Publishers)
	}
	pub := st.Publishers[0]
	checkClient("publisher", pub.ClientVersion, pub.Address, pub.ConnectedSince, pub.Metadata, map[string]string{"team": "billing", "app": "p"})
	consumers := st.Subscriptions["s"].Consumers
	if len(consumers) != 1 {
		t.Fatalf("consumers %+v", consumers)
	}
	cs := consumers[0]
	checkClient("consumer", cs.ClientVersion, cs.Address, cs.ConnectedSince, cs.Metadata, map[string]string{"app": "c"})
}
