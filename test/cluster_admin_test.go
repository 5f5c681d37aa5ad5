package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterPartitionedAdminFanOut: the partitions of a partitioned topic
// are spread over the brokers, yet its admin calls answered by any broker
// cover every partition: partitioned-stats and partitioned-internalStats
// merge the owners' answers, a subscription operation (skip_all) and an
// unload act on every partition at its owner.
func TestClusterPartitionedAdminFanOut(t *testing.T) {
	c := startCluster(t, 3)
	const parts, msgs = 8, 40
	name := fmt.Sprintf("public/default/fan-%d", time.Now().UnixNano())
	topic := "persistent://" + name
	if code, body := httpDo(t, http.MethodPut, c.brokers[0].webURL+"/admin/v2/persistent/"+name+"/partitions", fmt.Sprint(parts)); code/100 != 2 {
		t.Fatalf("create partitioned topic: %d %s", code, body)
	}
	// Spread the partitions' bundles: an HTTP lookup with authoritative=true
	// makes the broker asked take an unowned bundle (concurrent lookups of a
	// new partitioned topic may all pick the same least-loaded broker).
	for i := range parts {
		getJSON(t, fmt.Sprintf("%s/lookup/v2/topic/persistent/%s-partition-%d?authoritative=true", c.brokers[i%3].webURL, name, i), &map[string]string{})
	}
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	cons.Close() // the subscription stays, with every message in its backlog
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	byOwner := map[int]bool{}
	for i := range parts {
		byOwner[c.owner(fmt.Sprintf("%s-partition-%d", topic, i))] = true
	}
	if len(byOwner) < 2 {
		t.Fatalf("%d partitions all owned by one broker", parts)
	}
	type stats struct {
		MsgInCounter  int64 `json:"msgInCounter"`
		Subscriptions map[string]struct {
			MsgBacklog int64 `json:"msgBacklog"`
		} `json:"subscriptions"`
		Partitions map[string]json.RawMessage `json:"partitions"`
	}
	check := func(wantBacklog int64) {
		t.Helper()
		for i, b := range c.brokers {
			var st stats
			getJSON(t, b.webURL+"/admin/v2/persistent/"+name+"/partitioned-stats?perPartition=true", &st)
			if st.MsgInCounter != msgs || len(st.Partitions) != parts || st.Subscriptions["s"].MsgBacklog != wantBacklog {
				t.Fatalf("partitioned-stats from broker %d: msgInCounter %d (want %d), %d partitions (want %d), backlog of s %d (want %d)",
					i, st.MsgInCounter, msgs, len(st.Partitions), parts, st.Subscriptions["s"].MsgBacklog, wantBacklog)
			}
		}
	}
	check(msgs)
	var internal struct {
		Partitions map[string]struct {
			NumberOfEntries int64 `json:"numberOfEntries"`
		} `json:"partitions"`
	}
	getJSON(t, c.brokers[1].webURL+"/admin/v2/persistent/"+name+"/partitioned-internalStats", &internal)
	var entries int64
	for _, ps := range internal.Partitions {
		entries += ps.NumberOfEntries
	}
	if len(internal.Partitions) != parts || entries != msgs {
		t.Fatalf("partitioned-internalStats: %d partitions, %d entries; want %d, %d", len(internal.Partitions), entries, parts, msgs)
	}
	// skip_all through another broker: redirected to the owner of the
	// partitioned topic's name, which clears every partition at its owner.
	if code, body := httpDo(t, http.MethodPost, c.brokers[2].webURL+"/admin/v2/persistent/"+name+"/subscription/s/skip_all", ""); code != http.StatusNoContent {
		t.Fatalf("skip_all: %d %s", code, body)
	}
	check(0)
	if code, body := httpDo(t, http.MethodPut, c.brokers[0].webURL+"/admin/v2/persistent/"+name+"/unload", ""); code != http.StatusNoContent {
		t.Fatalf("unload: %d %s", code, body)
	}
	// Namespace unload: every bundle at its owner; none is owned afterwards.
	if out, err := exec.Command(mbBinary, "admin", "--admin-url", c.brokers[1].webURL, "namespaces", "unload", "public/default").CombinedOutput(); err != nil {
		t.Fatalf("mb admin namespaces unload: %v: %s", err, out)
	}
	owners, err := c.etcd.Client(t).Get(context.Background(), "/mbtest/cluster/owners/bundles/public/default/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if owners.Count != 0 {
		t.Fatalf("%d bundles of public/default still owned after the namespace unload", owners.Count)
	}
}
