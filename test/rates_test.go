package test

// Rate policies: publish, dispatch and subscription dispatch rates slow
// clients down to the rate; the subscribe rate refuses a consumer that
// subscribes too often. The checks are lower bounds on time (a rate can
// only make things slower), so a loaded machine cannot fail them.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

func TestTopicPublishRateThrottles(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "pubrate")[0]
	tn := topicName(t, topic)
	if r, err := admin.Topics().GetPublishRate(tn); err != nil || r != nil {
		t.Fatalf("unset: %v %v", r, err)
	}
	if err := admin.Topics().SetPublishRate(tn, utils.PublishRateData{PublishThrottlingRateInMsg: 50, PublishThrottlingRateInByte: -1}); err != nil {
		t.Fatal(err)
	}
	if r, err := admin.Topics().GetPublishRate(tn); err != nil || r == nil || r.PublishThrottlingRateInMsg != 50 {
		t.Fatalf("get: %+v %v", r, err)
	}
	client := newClient(t, s.BrokerURL())
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// 50 are in the bucket; the next 100 take 2 s at 50/s.
	start := time.Now()
	errs := make(chan error, 150)
	for i := 0; i < 150; i++ {
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
	}
	for i := 0; i < 150; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("150 messages at 50/s took %v", el)
	}
	if err := admin.Topics().RemovePublishRate(tn); err != nil {
		t.Fatal(err)
	}
	if r, err := admin.Topics().GetPublishRate(tn); err != nil || r != nil {
		t.Fatalf("removed: %v %v", r, err)
	}
}

func TestSubscriptionDispatchRateThrottles(t *testing.T) {
	// The namespace's rate for the local cluster applies.
	s, ns := policyServer(t, `{}`)
	code, body := httpDo(t, "POST", s.WebURL()+"/admin/v2/namespaces/"+ns+"/subscriptionDispatchRate",
		`{"dispatchThrottlingRateInMsg": 20, "dispatchThrottlingRateInByte": -1, "ratePeriodInSecond": 1}`)
	if code != 204 {
		t.Fatalf("set: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", s.WebURL()+"/admin/v2/namespaces/"+ns+"/subscriptionDispatchRate", ""); code != 200 || !strings.Contains(body, `"dispatchThrottlingRateInMsg":20`) {
		t.Fatalf("get: %d %s", code, body)
	}
	topic := "persistent://" + ns + "/disprate"
	client := newClient(t, s.BrokerURL())
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < 60; i++ {
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// A backlog of 60 for a new subscription from the earliest.
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	start := time.Now()
	for _, m := range receiveN(t, cons, 60, 30*time.Second) {
		cons.Ack(m)
	}
	// 20 in the bucket, then 40 at 20/s.
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("60 messages at 20/s took %v", el)
	}
}

func TestSubscribeRateRefuses(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "subrate")[0]
	tn := topicName(t, topic)
	if err := admin.Topics().SetSubscribeRate(tn, utils.SubscribeRate{SubscribeThrottlingRatePerConsumer: 2, RatePeriodInSecond: 60}); err != nil {
		t.Fatal(err)
	}
	client := newClient(t, s.BrokerURL())
	for i := 0; i < 2; i++ {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Name: "same"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	_, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Name: "same"})
	if err == nil || !strings.Contains(err.Error(), "Subscribe limited by subscribe rate limit per consumer") {
		t.Fatalf("third subscribe within the period: %v", err)
	}
	// Another consumer name has its own count.
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestRatePolicyBadInput(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	base := s.WebURL() + "/admin/v2/namespaces/" + ns + "/"
	for _, p := range []string{"publishRate", "dispatchRate", "subscriptionDispatchRate", "subscribeRate", "replicatorDispatchRate"} {
		expectHTTP(t, "GET", base+p, "", 204)
		expectHTTP(t, "POST", base+p, `{"unknownField": 1}`, 400)
		expectHTTP(t, "POST", base+p, `5`, 400)
		expectHTTP(t, "DELETE", base+p, "", 204)
	}
}

// TestRatePolicyDefaults: fields a rate body leaves out read back as
// Pulsar's defaults (-1: no limit; a period of 1 s, 30 s for subscribe
// rates), on namespaces and topics.
func TestRatePolicyDefaults(t *testing.T) {
	s, ns := policyServer(t, `{}`)
	admin := newAdmin(t, s)
	topic := policyTopics(t, admin, ns, "ratedefaults")[0]
	want := map[string]string{
		"publishRate":              `{"publishThrottlingRateInMsg":-1,"publishThrottlingRateInByte":-1}`,
		"dispatchRate":             `{"dispatchThrottlingRateInMsg":-1,"dispatchThrottlingRateInByte":-1,"relativeToPublishRate":false,"ratePeriodInSecond":1}`,
		"subscriptionDispatchRate": `{"dispatchThrottlingRateInMsg":-1,"dispatchThrottlingRateInByte":-1,"relativeToPublishRate":false,"ratePeriodInSecond":1}`,
		"replicatorDispatchRate":   `{"dispatchThrottlingRateInMsg":-1,"dispatchThrottlingRateInByte":-1,"relativeToPublishRate":false,"ratePeriodInSecond":1}`,
		"subscribeRate":            `{"subscribeThrottlingRatePerConsumer":-1,"ratePeriodInSecond":30}`,
	}
	tn := topicName(t, topic)
	for _, base := range []string{s.WebURL() + "/admin/v2/namespaces/" + ns + "/", s.WebURL() + "/admin/v2/" + (&tn).GetRestPath() + "/"} {
		for p, w := range want {
			expectHTTP(t, "POST", base+p, `{}`, 204)
			if code, body := httpDo(t, "GET", base+p, ""); code != 200 || strings.TrimSpace(body) != w {
				t.Errorf("GET %s%s = %d %s, want %s", base, p, code, body, w)
			}
		}
	}
}
