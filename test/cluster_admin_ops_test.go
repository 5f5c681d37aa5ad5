package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// spreadPartitions creates partitioned topic name (tenant/ns/topic) of
// parts partitions through broker 0 and has broker i%3 take partition i's
// bundle (an HTTP lookup with authoritative=true), so that the partitions
// are served by several brokers; it fails unless at least two serve them.
func spreadPartitions(t *testing.T, c *testCluster, name string, parts int) {
	t.Helper()
	if code, body := httpDo(t, http.MethodPut, c.brokers[0].webURL+"/admin/v2/persistent/"+name+"/partitions", fmt.Sprint(parts)); code/100 != 2 {
		t.Fatalf("create partitioned topic: %d %s", code, body)
	}
	for i := range parts {
		getJSON(t, fmt.Sprintf("%s/lookup/v2/topic/persistent/%s-partition-%d?authoritative=true", c.brokers[i%len(c.brokers)].webURL, name, i), &map[string]string{})
	}
	owners := map[int]bool{}
	for i := range parts {
		owners[c.owner(fmt.Sprintf("persistent://%s-partition-%d", name, i))] = true
	}
	if len(owners) < 2 {
		t.Fatalf("%d partitions all served by one broker", parts)
	}
}

// nameOwnerOf is the broker serving the bundle of partitioned topic name's
// own name: the one that does not redirect a call on it.
func nameOwnerOf(t *testing.T, c *testCluster, name string) int {
	t.Helper()
	for i, b := range c.brokers {
		resp, err := noRedirect.Get(b.webURL + "/admin/v2/persistent/" + name + "/compaction")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			return i
		}
	}
	t.Fatalf("every broker redirects calls on %s", name)
	return -1
}

func clusterAdmin(t *testing.T, webURL string) pulsaradmin.Client {
	t.Helper()
	a, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: webURL})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestClusterPartitionedAdminOps: compaction, offload, termination and
// deletion of a partitioned topic whose partitions are spread over 3
// brokers act on every partition at its owner, whichever broker is asked.
func TestClusterPartitionedAdminOps(t *testing.T) {
	c := startCluster(t, 3)
	const parts, keys = 6, 12
	name := fmt.Sprintf("public/default/ops-%d", time.Now().UnixNano())
	topic := "persistent://" + name
	spreadPartitions(t, c, name, parts)
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for k := range keys {
			send(t, p, fmt.Sprint("k", k), fmt.Sprint("v", round))
		}
	}
	p.Close()

	// Compaction through broker 1 (pulsaradmin follows its 307 to the owner
	// of the partitioned topic's name): every partition is compacted at its
	// owner; the merged status, and each partition's at its owner, is SUCCESS.
	adm := clusterAdmin(t, c.brokers[1].webURL)
	compactAndWait(t, adm, topic)
	for i := range parts {
		st, err := adm.Topics().CompactStatus(topicName(t, fmt.Sprintf("%s-partition-%d", topic, i)))
		if err != nil || st.Status != utils.SUCCESS {
			t.Fatalf("compaction status of partition %d: %v %+v", i, err, st)
		}
	}
	// Offload: the owners answer (no tiered storage under mb broker), from any broker.
	for i, b := range c.brokers {
		code, body := httpDo(t, http.MethodGet, b.webURL+"/admin/v2/persistent/"+name+"/offload", "")
		if code != http.StatusBadRequest || !strings.Contains(body, "offload") {
			t.Fatalf("offload status from broker %d: %d %s", i, code, body)
		}
	}

	// A non-forced delete is refused while a partition served by another
	// broker than the name's owner has a consumer, before anything is deleted.
	nameOwner := nameOwnerOf(t, c, name)
	busy := -1
	for i := range parts {
		if c.owner(fmt.Sprintf("%s-partition-%d", topic, i)) != nameOwner {
			busy = i
			break
		}
	}
	if busy < 0 {
		t.Fatal("every partition is served by the owner of the partitioned topic's name")
	}
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: fmt.Sprintf("%s-partition-%d", topic, busy), SubscriptionName: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	adm2 := clusterAdmin(t, c.brokers[2].webURL)
	if err := adm2.Topics().Delete(topicName(t, topic), false, false); err == nil || !strings.Contains(err.Error(), "412") {
		t.Fatalf("delete with a consumer on partition %d: %v, want 412", busy, err)
	}
	cons.Close()

	// Terminate every partition at its owner: the last message ids of all
	// partitions cover every message; a second call answers the same.
	var ids, again map[string]struct {
		LedgerID int64 `json:"ledgerId"`
		EntryID  int64 `json:"entryId"`
	}
	for _, out := range []*map[string]struct {
		LedgerID int64 `json:"ledgerId"`
		EntryID  int64 `json:"entryId"`
	}{&ids, &again} {
		code, body := httpDo(t, http.MethodPost, c.brokers[2].webURL+"/admin/v2/persistent/"+name+"/terminate/partitions?authoritative=false", "")
		if code != http.StatusOK {
			t.Fatalf("terminate/partitions: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, id := range ids {
		total += id.EntryID + 1
	}
	if len(ids) != parts || total != 2*keys || fmt.Sprint(ids) != fmt.Sprint(again) {
		t.Fatalf("terminate/partitions: %v then %v; want %d partitions covering %d messages", ids, again, parts, 2*keys)
	}
	for i := range parts {
		var st struct {
			State string `json:"state"`
		}
		getJSON(t, fmt.Sprintf("%s/admin/v2/persistent/%s-partition-%d/internalStats", c.brokers[i%3].webURL, name, i), &st)
		if st.State != "Terminated" {
			t.Fatalf("partition %d after terminate/partitions: state %q", i, st.State)
		}
	}

	// Delete through broker 2: every partition at its owner, then the metadata.
	if err := adm2.Topics().Delete(topicName(t, topic), false, false); err != nil {
		t.Fatal(err)
	}
	for i := range parts {
		code, body := httpDo(t, http.MethodGet, fmt.Sprintf("%s/admin/v2/persistent/%s-partition-%d/stats", c.brokers[i%3].webURL, name, i), "")
		if code != http.StatusNotFound {
			t.Fatalf("stats of partition %d after the delete: %d %s", i, code, body)
		}
	}
	if code, body := httpDo(t, http.MethodGet, c.brokers[0].webURL+"/admin/v2/persistent/"+name+"/partitions", ""); !strings.Contains(body, `"partitions":0`) {
		t.Fatalf("partitioned metadata after the delete: %d %s", code, body)
	}
}

// TestClusterCompactionFailover: a topic compacted on a cluster is read
// compacted from its new owner after its owner is killed (-9): the
// compacted ledger and the compaction horizon are in S3 and etcd, fenced
// with the topic's bundle.
func TestClusterCompactionFailover(t *testing.T) {
	c := startCluster(t, 3)
	const keys = 10
	topic := fmt.Sprintf("persistent://public/default/compacted-%d", time.Now().UnixNano())
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger(), OperationTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for k := range keys {
			send(t, p, fmt.Sprint("k", k), fmt.Sprint("v", round))
		}
	}
	p.Close()
	owner := c.owner(topic)
	compactAndWait(t, clusterAdmin(t, c.brokers[(owner+1)%3].webURL), topic)

	// readCompacted reads the compacted view from the start: the latest value of each key once.
	readCompacted := func(pc pulsar.Client, when string) {
		t.Helper()
		// Until the killed owner's lease expires, lookups still name it and
		// creating a reader fails (connection refused): try again.
		var r pulsar.Reader
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			r, err = pc.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID(), ReadCompacted: true})
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: reader: %v", when, err)
		}
		defer r.Close()
		seen := map[string]string{}
		for n := 0; n < keys; n++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			m, err := r.Next(ctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: after %d messages: %v", when, n, err)
			}
			if _, dup := seen[m.Key()]; dup || string(m.Payload()) != "v2" {
				t.Fatalf("%s: message %d is %s=%s (seen %v); want each key once with v2", when, n, m.Key(), m.Payload(), seen)
			}
			seen[m.Key()] = string(m.Payload())
		}
		if r.HasNext() {
			t.Fatalf("%s: more than %d messages in the compacted view", when, keys)
		}
	}
	readCompacted(pc, "on the owner")

	c.brokers[owner].cmd.Process.Signal(syscall.SIGKILL)
	<-c.brokers[owner].exited
	c.down[owner] = true
	killed := time.Now()
	// A new client on the live brokers (one of the old client's hosts is dead).
	var live []string
	for i, b := range c.brokers {
		if i != owner {
			live = append(live, strings.TrimPrefix(b.brokerURL, "pulsar://"))
		}
	}
	pc2, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + strings.Join(live, ","), Logger: nopLogger(), OperationTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close()
	readCompacted(pc2, "on the new owner")
	if now := c.owner(topic); now == owner {
		t.Fatalf("topic still owned by the killed broker b%d", owner)
	}
	t.Logf("compacted view read from the new owner %v after the kill", time.Since(killed).Round(time.Millisecond))
}

// TestClusterNamespaceDeleteForce: deleting a namespace with force through
// one broker deletes every topic at its owner, partitions included: a
// namespace created again with the same topics starts empty.
func TestClusterNamespaceDeleteForce(t *testing.T) {
	c := startCluster(t, 3)
	ns := fmt.Sprintf("public/del-%d", time.Now().UnixNano())
	create := func() {
		if code, body := httpDo(t, http.MethodPut, c.brokers[0].webURL+"/admin/v2/namespaces/"+ns, ""); code/100 != 2 {
			t.Fatalf("create namespace: %d %s", code, body)
		}
	}
	create()
	spreadPartitions(t, c, ns+"/parts", 6)
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	topics := []string{"persistent://" + ns + "/parts"}
	owners := map[int]bool{}
	for i := 0; i < 6; i++ {
		topics = append(topics, fmt.Sprintf("persistent://%s/t%d", ns, i))
	}
	for _, topic := range topics {
		p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		for k := range 6 {
			send(t, p, fmt.Sprint("k", k), "old")
		}
		p.Close()
		if !strings.HasSuffix(topic, "/parts") {
			owners[c.owner(topic)] = true
		}
	}
	if len(owners) < 2 {
		t.Fatalf("the topics are all served by one broker: %v", owners)
	}

	if code, body := httpDo(t, http.MethodDelete, c.brokers[0].webURL+"/admin/v2/namespaces/"+ns, ""); code != http.StatusConflict {
		t.Fatalf("delete without force: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodDelete, c.brokers[0].webURL+"/admin/v2/namespaces/"+ns+"?force=true", ""); code != http.StatusNoContent {
		t.Fatalf("delete with force: %d %s", code, body)
	}
	create()
	for _, topic := range topics[1:] {
		r, err := pc.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
		if err != nil {
			t.Fatal(err)
		}
		if r.HasNext() {
			m, _ := r.Next(context.Background())
			t.Fatalf("%s (served by b%d) kept %q after its namespace was deleted", topic, c.owner(topic), m.Payload())
		}
		r.Close()
	}
}
