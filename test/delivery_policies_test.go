package test

// Delivery policies (auto subscription creation, delayed delivery),
// subscription permissions, the brokers endpoints with the dynamic
// configuration, and the stats timestamps, as Pulsar's tools use them.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

func TestAutoSubscriptionCreationPolicy(t *testing.T) {
	s, ns := policyServer(t, `{"autoSubscriptionCreationOverride": {"allowAutoSubscriptionCreation": false}}`)
	admin := newAdmin(t, s)
	topic := "persistent://" + ns + "/autosub"
	client := newClient(t, s.BrokerURL())
	_, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "new", MaxReconnectToBroker: ptrUint(0)})
	if err == nil || !strings.Contains(err.Error(), "Subscription does not exist") {
		t.Fatalf("subscribe to a new subscription with auto creation off: %v", err)
	}
	// A subscription created through the admin API can be joined.
	if err := admin.Subscriptions().Create(topicName(t, topic), "made", utils.Earliest); err != nil {
		t.Fatal(err)
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "made"})
	if err != nil {
		t.Fatalf("join an existing subscription: %v", err)
	}
	c.Close()
	// Readers (non-durable) are not affected.
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	r.Close()
	// The topic-level override wins over the namespace's.
	if err := admin.Topics().SetAutoSubscriptionCreation(topicName(t, topic),
		utils.AutoSubscriptionCreationOverride{AllowAutoSubscriptionCreation: true}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.Topics().GetAutoSubscriptionCreation(topicName(t, topic))
	if err != nil || got == nil || !got.AllowAutoSubscriptionCreation {
		t.Fatalf("topic autoSubscriptionCreation: %+v %v", got, err)
	}
	c, err = client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "new2"})
	if err != nil {
		t.Fatalf("subscribe with the topic allowing it: %v", err)
	}
	c.Close()
}

func ptrUint(v uint) *uint { return &v }

func TestDelayedDeliveryPolicy(t *testing.T) {
	s, ns := policyServer(t, `{"delayed_delivery_policies": {"active": false, "tickTime": 1000}}`)
	topic := "persistent://" + ns + "/delayed"
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
	// Delayed delivery off: a message asked for in an hour comes at once.
	if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x"), DeliverAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	receiveN(t, cons, 1, 10*time.Second)

	// The topic turns it on with a maximum delay: a longer delay is refused.
	admin := newAdmin(t, s)
	if err := admin.Topics().SetDelayedDelivery(topicName(t, topic),
		utils.DelayedDeliveryData{Active: true, TickTime: 1000, MaxDelayInMillis: 60000}); err != nil {
		t.Fatal(err)
	}
	dd, err := admin.Topics().GetDelayedDelivery(topicName(t, topic))
	if err != nil || dd == nil || !dd.Active || dd.TickTime != 1000 {
		t.Fatalf("topic delayedDelivery: %+v %v", dd, err)
	}
	// The producer learns the policy when it is (re)created.
	prod2, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer prod2.Close()
	_, err = prod2.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("late"), DeliverAfter: time.Hour})
	if err == nil {
		// The Go client reports no reason (it retries a NotAllowed send
		// until its send timeout); the refusal is what counts.
		t.Fatal("a delay beyond maxDeliveryDelayInMillis was accepted")
	}
	// (The Go client gives up on a producer whose send was refused.)
	prod3, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer prod3.Close()
	if _, err := prod3.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("soon"), DeliverAfter: time.Second}); err != nil {
		t.Fatalf("a delay within the maximum: %v", err)
	}
	if err := admin.Topics().RemoveDelayedDelivery(topicName(t, topic)); err != nil {
		t.Fatal(err)
	}
	if dd, err := admin.Topics().GetDelayedDelivery(topicName(t, topic)); err != nil || dd != nil {
		t.Fatalf("after remove: %+v %v", dd, err)
	}
}

func TestSubscriptionPermissions(t *testing.T) {
	secretFile, secret := secretKey(t)
	s := startServer(t, server.Options{Security: server.Security{AuthTokenSecretKey: secretFile, SuperuserRoles: []string{"admin"}}})
	admin := tokenAdmin(t, s.WebURL(), signToken(t, secret, "admin", time.Now().Add(time.Hour)))
	ns, _ := utils.GetNamespaceName("public/default")
	if err := admin.Namespaces().GrantNamespacePermission(*ns, "app", []utils.AuthAction{"consume"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().GrantSubPermission(*ns, "locked", []string{"other"}); err != nil {
		t.Fatal(err)
	}
	perms, err := admin.Namespaces().GetSubPermissions(*ns)
	if err != nil || len(perms["locked"]) != 1 || perms["locked"][0] != "other" {
		t.Fatalf("subscription permissions: %v %v", perms, err)
	}
	app := tokenClient(t, s.BrokerURL(), signToken(t, secret, "app", time.Now().Add(time.Hour)))
	topic := "persistent://public/default/" + strings.ReplaceAll(t.Name(), "/", "_")
	if _, err := app.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "locked", MaxReconnectToBroker: ptrUint(0)}); err == nil {
		t.Fatal("a role outside the subscription's roles subscribed")
	}
	c, err := app.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "free"})
	if err != nil {
		t.Fatalf("a subscription without roles: %v", err)
	}
	c.Close()
	if err := admin.Namespaces().RevokeSubPermission(*ns, "locked", "other"); err != nil {
		t.Fatal(err)
	}
	if perms, err := admin.Namespaces().GetSubPermissions(*ns); err != nil || len(perms["locked"]) != 0 {
		t.Fatalf("after revoke: %v %v", perms, err)
	}
	c, err = app.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "locked"})
	if err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	c.Close()

	// A tenant that does not exist is reported as such to a role that
	// administers nothing, as Pulsar does.
	req, _ := http.NewRequest("PUT", s.WebURL()+"/admin/v2/namespaces/nosuch/default/schemaCompatibilityStrategy", strings.NewReader(`"FULL"`))
	req.Header.Set("Authorization", "Bearer "+signToken(t, secret, "app", time.Now().Add(time.Hour)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "Tenant does not exist") {
		t.Fatalf("non-existent tenant: %d %s", resp.StatusCode, body)
	}
}

func TestBrokersEndpointsAndDynamicConfiguration(t *testing.T) {
	s := startServer(t, server.Options{PolicyCheckInterval: 100 * time.Millisecond})
	admin := newAdmin(t, s)
	bs, err := admin.Brokers().GetListActiveBrokers()
	if err != nil || len(bs) != 1 || !strings.HasPrefix(s.WebURL(), "http://"+bs[0]) {
		t.Fatalf("active brokers: %v %v (web %s)", bs, err, s.WebURL())
	}
	leader, err := admin.Brokers().GetLeaderBroker()
	if err != nil || leader.BrokerID != bs[0] || leader.ServiceURL != "http://"+bs[0] {
		t.Fatalf("leader: %+v %v", leader, err)
	}
	names, err := admin.Brokers().GetDynamicConfigurationNames()
	if err != nil || !slices.Contains(names, "allowAutoSubscriptionCreation") {
		t.Fatalf("dynamic names: %v %v", names, err)
	}
	// Turning auto subscription creation off takes effect at once.
	if err := admin.Brokers().UpdateDynamicConfiguration("allowAutoSubscriptionCreation", "false"); err != nil {
		t.Fatal(err)
	}
	vals, err := admin.Brokers().GetAllDynamicConfigurations()
	if err != nil || vals["allowAutoSubscriptionCreation"] != "false" {
		t.Fatalf("values: %v %v", vals, err)
	}
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	if _, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", MaxReconnectToBroker: ptrUint(0)}); err == nil {
		t.Fatal("subscription created with allowAutoSubscriptionCreation=false")
	}
	// Errors: a name that is not dynamic, a bad value.
	for _, c := range [][2]string{{"clusterName", "x"}, {"maxUnackedMessagesPerConsumer", "-1"}} {
		err := admin.Brokers().UpdateDynamicConfiguration(c[0], c[1])
		var re interface{ Error() string }
		if err == nil || !errors.As(err, &re) || !strings.Contains(err.Error(), "412") {
			t.Fatalf("update %s=%s: %v", c[0], c[1], err)
		}
	}
	if err := admin.Brokers().DeleteDynamicConfiguration("allowAutoSubscriptionCreation"); err != nil {
		t.Fatal(err)
	}
	rt, err := admin.Brokers().GetRuntimeConfigurations()
	if err != nil || rt["allowAutoSubscriptionCreation"] != "true" {
		t.Fatalf("runtime after delete: %v %v", rt, err)
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatalf("subscribe after the override was removed: %v", err)
	}
	c.Close()
}

func TestTopicStatsTimestampsAndExclusions(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 0); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Topics().GetStats(topicName(t, topic))
	if err != nil || st.TopicCreationTimeStamp <= 0 || st.LastPublishTimestamp != 0 {
		t.Fatalf("stats before publishing: created %d, last publish %d, %v", st.TopicCreationTimeStamp, st.LastPublishTimestamp, err)
	}
	client := newClient(t, s.BrokerURL())
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	before := time.Now().UnixMilli()
	if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	st, err = admin.Topics().GetStats(topicName(t, topic))
	if err != nil || st.LastPublishTimestamp < before || len(st.Publishers) != 1 {
		t.Fatalf("stats after publishing: last publish %d (sent after %d), publishers %d, %v", st.LastPublishTimestamp, before, len(st.Publishers), err)
	}
	_, body := httpDo(t, "GET", s.WebURL()+"/admin/v2/persistent/"+strings.TrimPrefix(topic, "persistent://")+"/stats?excludePublishers=true", "")
	var v struct {
		Publishers []json.RawMessage `json:"publishers"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Publishers) != 0 {
		t.Fatalf("excludePublishers: %s", body)
	}
}
