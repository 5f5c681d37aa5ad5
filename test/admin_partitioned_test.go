package test

// Operations on a partitioned topic as a whole, which pulsaradmin does not
// wrap: the raw REST calls pulsar-admin makes.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

func TestAdminTerminatePartitions(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 2); err != nil {
		t.Fatal(err)
	}
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic + "-partition-1", DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 2)

	body := expectHTTP(t, "POST", restTopic(s.WebURL(), topic)+"/terminate/partitions", "", http.StatusOK)
	var got map[string]struct {
		LedgerID       int64 `json:"ledgerId"`
		EntryID        int64 `json:"entryId"`
		PartitionIndex int   `json:"partitionIndex"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	if len(got) != 2 || got["0"].EntryID != -1 || got["0"].PartitionIndex != 0 ||
		got["1"].EntryID != ids[1].EntryID() || got["1"].LedgerID != ids[1].LedgerID() || got["1"].PartitionIndex != 1 {
		t.Fatalf("last message ids: %s, want partition 1 at %v", body, ids[1])
	}
	for _, p := range []string{topic + "-partition-0", topic + "-partition-1"} {
		if _, err := client.CreateProducer(pulsar.ProducerOptions{Topic: p}); err == nil || !strings.Contains(err.Error(), "TopicTerminated") {
			t.Fatalf("producer on terminated %s: %v", p, err)
		}
	}
	plain := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, plain), 0); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "POST", restTopic(s.WebURL(), plain)+"/terminate/partitions", "", http.StatusMethodNotAllowed)
	expectHTTP(t, "POST", restTopic(s.WebURL(), uniqueTopic(t))+"/terminate/partitions", "", http.StatusNotFound)
	expectHTTP(t, "POST", s.WebURL()+"/admin/v2/persistent/public/nope/x/terminate/partitions", "", http.StatusNotFound)
}

func TestAdminPartitionedInternalStats(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 2); err != nil {
		t.Fatal(err)
	}
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic + "-partition-0", DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sendN(t, producer, 0, 3)
	body := expectHTTP(t, "GET", restTopic(s.WebURL(), topic)+"/partitioned-internalStats", "", http.StatusOK)
	var got struct {
		Metadata   struct{ Partitions int }
		Partitions map[string]struct {
			NumberOfEntries int64  `json:"numberOfEntries"`
			State           string `json:"state"`
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	p0, p1 := got.Partitions[topic+"-partition-0"], got.Partitions[topic+"-partition-1"]
	if got.Metadata.Partitions != 2 || len(got.Partitions) != 2 || p0.NumberOfEntries != 3 || p1.NumberOfEntries != 0 || p0.State == "" {
		t.Fatalf("partitioned internal stats: %s", body)
	}
	plain := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, plain), 0); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "GET", restTopic(s.WebURL(), plain)+"/partitioned-internalStats", "", http.StatusNotFound)
}

// TestAdminCreateSubscriptionAutoCreation: creating a subscription creates
// a missing topic only where topics are created implicitly, as in Pulsar.
func TestAdminCreateSubscriptionAutoCreation(t *testing.T) {
	s, ns := policyServer(t, `{"autoTopicCreationOverride": {"allowAutoTopicCreation": false}}`)
	admin := newAdmin(t, s)
	missing := topicName(t, "persistent://"+ns+"/missing")
	expectStatus(t, admin.Subscriptions().Create(missing, "sub", utils.Latest), http.StatusNotFound, "subscription on a missing topic")
	if topics, err := admin.Namespaces().GetTopics(ns); err != nil || len(topics) != 0 {
		t.Fatalf("topics after a refused subscription: %v %v", topics, err)
	}
	// An existing topic takes subscriptions.
	if err := admin.Topics().Create(missing, 0); err != nil {
		t.Fatal(err)
	}
	if err := admin.Subscriptions().Create(missing, "sub", utils.Latest); err != nil {
		t.Fatal(err)
	}
	// Where auto creation is allowed (the default), the topic is created.
	other := topicName(t, uniqueTopic(t))
	if err := admin.Subscriptions().Create(other, "sub", utils.Latest); err != nil {
		t.Fatal(err)
	}
	if subs, err := admin.Subscriptions().List(other); err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions of an auto-created topic: %v %v", subs, err)
	}
}
