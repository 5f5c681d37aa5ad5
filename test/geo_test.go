package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

func startGeoServer(t *testing.T, name string) geoCluster {
	t.Helper()
	s := startServer(t, server.Options{ClusterName: name})
	return geoCluster{name: name, brokerURL: s.BrokerURL(), webURL: s.WebURL()}
}

// Two clusters, both directions: messages keep key, properties, event time
// and order; they arrive marked replicated_from; replicate_to restricts one
// message; stats show the links.
func TestGeoReplicationTwoClusters(t *testing.T) {
	a, b := startGeoServer(t, "a"), startGeoServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/two"

	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := map[string][]string{}
	et := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 100; i++ {
		key := fmt.Sprintf("k%d", i%5)
		v := fmt.Sprintf("a-%d", i)
		sent[key] = append(sent[key], v)
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(v),
			Properties: map[string]string{"i": fmt.Sprint(i)}, EventTime: et}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	// Only for a: never sent to b.
	if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Key: "local", Payload: []byte("only-a"), ReplicationClusters: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, b.brokerURL, topic, "s", 100, 2*time.Second)
	checkExactlyOnceInOrder(t, "b", got, sent)
	for _, m := range got {
		if m.from != "a" || m.props["i"] == "" || !m.eventTime.Equal(et) {
			t.Fatalf("replicated message lost its metadata: %+v", m)
		}
	}
	adminEventually(t, "a's link to b drained", func() bool {
		st := replicationStats(t, a.webURL, topic)["b"]
		return st.Connected && st.ReplicationBacklog == 0 && st.MsgOutCounter == 100
	})

	// And back: what b's producers write reaches a; what a replicated to b
	// does not come back.
	cb := newClient(t, b.brokerURL)
	defer cb.Close()
	pb, err := cb.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	if _, err := pb.Send(context.Background(), &pulsar.ProducerMessage{Key: "k", Payload: []byte("b-0")}); err != nil {
		t.Fatal(err)
	}
	gotA := receiveAll(t, a.brokerURL, topic, "s", 102, time.Second)
	checkExactlyOnceInOrder(t, "a", gotA, map[string][]string{"k0": sent["k0"], "k1": sent["k1"], "k2": sent["k2"], "k3": sent["k3"], "k4": sent["k4"], "local": {"only-a"}, "k": {"b-0"}})
}

// A partitioned topic replicates partition by partition; the remote topic
// is created with the same partition count.
func TestGeoReplicationPartitioned(t *testing.T) {
	a, b := startGeoServer(t, "a"), startGeoServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/parts"
	expectHTTP(t, "PUT", restTopic(a.webURL, topic)+"/partitions", "3", http.StatusNoContent)

	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := map[string][]string{}
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("k%d", i%6)
		v := fmt.Sprintf("v-%d", i)
		sent[key] = append(sent[key], v)
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	got := receiveAll(t, b.brokerURL, topic, "s", 60, 2*time.Second)
	checkExactlyOnceInOrder(t, "b", got, sent)
	if body := expectHTTP(t, "GET", restTopic(b.webURL, topic)+"/partitions", "", http.StatusOK); !strings.Contains(body, `"partitions":3`) {
		t.Fatalf("b's partitioned metadata: %s", body)
	}
	// The partitioned stats sum the partitions' links.
	adminEventually(t, "partitioned replication stats", func() bool {
		code, body := httpDo(t, "GET", restTopic(a.webURL, topic)+"/partitioned-stats", "")
		return code == http.StatusOK && strings.Contains(body, `"replication":{"b":{`) && strings.Contains(body, `"msgOutCounter":60`)
	})
}

// A cut between two clusters (both links pointed at a closed port) with
// traffic in both directions: each side's backlog for the other grows, and
// both converge once the links are restored.
func TestGeoReplicationCutHeals(t *testing.T) {
	a, b := startGeoServer(t, "a"), startGeoServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/cut"
	dead := fmt.Sprintf("pulsar://127.0.0.1:%d", freePort(t))
	point := func(on geoCluster, name, brokerURL, webURL string) {
		expectHTTP(t, "POST", on.webURL+"/admin/v2/clusters/"+name, fmt.Sprintf(`{"serviceUrl":%q,"brokerServiceUrl":%q}`, webURL, brokerURL), http.StatusNoContent)
	}
	sent := map[string][]string{}
	var mu sync.Mutex
	geoProduce(t, a, topic, 0, 50, sent, &mu)
	geoProduce(t, b, topic, 0, 50, sent, &mu)
	point(a, "b", dead, b.webURL)
	point(b, "a", dead, a.webURL)
	sides := []struct {
		c      geoCluster
		remote string
	}{{a, "b"}, {b, "a"}}
	// A replicator reads its remote's registration again within 5 s.
	for _, side := range sides {
		adminEventually(t, side.c.name+"'s link down", func() bool {
			return !replicationStats(t, side.c.webURL, topic)[side.remote].Connected
		})
	}
	geoProduce(t, a, topic, 50, 300, sent, &mu)
	geoProduce(t, b, topic, 50, 300, sent, &mu)
	for _, side := range sides {
		if st := replicationStats(t, side.c.webURL, topic)[side.remote]; st.Connected || st.ReplicationBacklog == 0 {
			t.Fatalf("%s -> %s while cut: %+v", side.c.name, side.remote, st)
		}
	}
	point(a, "b", b.brokerURL, b.webURL)
	point(b, "a", a.brokerURL, a.webURL)
	for _, c := range []geoCluster{a, b} {
		got := receiveAll(t, c.brokerURL, topic, "check", 600, 2*time.Second)
		checkExactlyOnceInOrder(t, c.name, got, sent)
	}
}

// A replicated subscription's progress follows to the other cluster: half
// consumed in a, the consumer that fails over to b starts where a left off,
// and nothing is skipped.
func TestGeoReplicatedSubscription(t *testing.T) {
	a, b := startGeoServer(t, "a"), startGeoServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/subs"
	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "rs", ReplicateSubscriptionState: true, AckGroupingOptions: &pulsar.AckGroupingOptions{MaxSize: 1}}
	cons, err := ca.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < 100; i++ {
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	cons.Close()
	adminEventually(t, "b's subscription at a's position", func() bool {
		code, body := httpDo(t, "GET", restTopic(b.webURL, topic)+"/stats", "")
		return code == http.StatusOK && strings.Contains(body, `"rs":{`) && strings.Contains(body, `"msgBacklog":50,`)
	})
	cb := newClient(t, b.brokerURL)
	defer cb.Close()
	opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	consB, err := cb.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer consB.Close()
	for want := 50; want < 100; want++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := consB.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %d: %v", want, err)
		}
		if got := string(m.Payload()); got != fmt.Sprint(want) {
			t.Fatalf("b delivered %s, want %d", got, want)
		}
		consB.Ack(m)
	}
}
