package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// Geo-replication between clusters of several brokers (cluster mode). Two
// clusters, a and b, each of 2 `mb broker` processes, share one etcd member
// and one S3 gateway under separate metadata prefixes and buckets (each
// cluster sees only its own metadata and data, as if they were apart).

// startGeoCluster starts cluster name: n brokers with --cluster-name name.
func startGeoCluster(t *testing.T, etcd *etcdtest.Cluster, gw *s3test.Gateway, name string, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, etcd: etcd, gw: gw, down: map[int]bool{}, batchOnly: true,
		prefix: "/mbgeo-" + name, bucket: "mbgeo-" + name, extra: []string{"--cluster-name", name}}
	gw.Bucket(t, c.bucket, nil)
	for i := range n {
		c.brokers = append(c.brokers, c.launch(i, c.extra))
	}
	for _, p := range c.brokers {
		waitHealthy(t, p.webURL, p.exited)
	}
	return c
}

// geo is the cluster as geoLink registers it elsewhere: every broker in
// its broker URL (the link starts at any), the first broker's admin API.
func (c *testCluster) geo(name string) geoCluster {
	return geoCluster{name: name, brokerURL: c.serviceURL(), webURL: c.brokers[0].webURL}
}

// registerAllHosts registers, on cluster on, cluster name (c) with every
// broker of c in both URLs (pulsar://h1,h2 and http://h1,h2): the link and
// its admin calls start at any broker and follow redirects to the owner.
func registerAllHosts(t *testing.T, on *testCluster, name string, c *testCluster) {
	t.Helper()
	var web []string
	for _, p := range c.brokers {
		web = append(web, strings.TrimPrefix(p.webURL, "http://"))
	}
	body := fmt.Sprintf(`{"serviceUrl":"http://%s","brokerServiceUrl":%q}`, strings.Join(web, ","), c.serviceURL())
	expectHTTP(t, "POST", on.brokers[0].webURL+"/admin/v2/clusters/"+name, body, http.StatusNoContent)
}

// liveWebURL is the admin API of a broker that is up.
func (c *testCluster) liveWebURL() string {
	for i, p := range c.brokers {
		if !c.down[i] {
			return p.webURL
		}
	}
	c.t.Fatal("no broker is up")
	return ""
}

// replicatedOut is the msgOutCounter of topic's link to remote; 0 while
// the topic does not exist yet or its owner cannot be reached (a failover).
func replicatedOut(t *testing.T, webURL, topic, remote string) int64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(restTopic(webURL, topic) + "/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Replication map[string]struct {
			MsgOutCounter int64 `json:"msgOutCounter"`
		} `json:"replication"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	return st.Replication[remote].MsgOutCounter
}

// geoProduceUntil sends values <cluster>-<i> with keys <cluster>-k<i%4> to
// topic through c's brokers, 10 at a time every 20 ms, until stop is
// closed; it records what it sent in sent and counts receipts in acked.
// Every send must succeed (the client resends across a failover).
func geoProduceUntil(t *testing.T, name, url, topic string, stop <-chan struct{}, sent map[string][]string, mu *sync.Mutex, acked *atomic.Int64) {
	t.Helper()
	cl := newClient(t, url)
	defer cl.Close()
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 20,
		BatchingMaxPublishDelay: 5 * time.Millisecond, SendTimeout: 60 * time.Second})
	if err != nil {
		t.Error(err)
		return
	}
	defer p.Close()
	var wg sync.WaitGroup
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case <-stop:
			p.FlushWithCtx(context.Background())
			wg.Wait()
			return
		case <-tick.C:
		}
		for range 10 {
			key := fmt.Sprintf("%s-k%d", name, i%4)
			v := fmt.Sprintf("%s-%d", name, i)
			i++
			mu.Lock()
			sent[key] = append(sent[key], v)
			mu.Unlock()
			wg.Add(1)
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("send %s: %v", v, err)
					return
				}
				acked.Add(1)
			})
		}
	}
}

// Two clusters of 2 brokers replicate a topic both ways while producers
// write in both; the broker of cluster a that owns the topic (and runs its
// replicator to b, and receives b's replicated messages) is killed with
// SIGKILL during the traffic. The other broker of a takes the topic over,
// its replicator resumes from the durable cursor, b's link follows a's
// lookup to the new owner, whose deduplication of b's messages is rebuilt
// from what a stored: every message appears exactly once in both clusters,
// in send order per key (per source).
func TestGeoReplicationBetweenClustersKill9Owner(t *testing.T) {
	if metadataStore != "" {
		t.Skip("cluster tests run their own etcd members: they run once, without MB_TEST_METADATA_STORE")
	}
	start := time.Now()
	etcd := etcdtest.Start(t, 1)
	gw := s3test.Start(t)
	a := startGeoCluster(t, etcd, gw, "a", 2)
	b := startGeoCluster(t, etcd, gw, "b", 2)
	ga, gb := a.geo("a"), b.geo("b")
	geoLink(t, "public/geo", "", ga, gb)
	registerAllHosts(t, a, "b", b)
	registerAllHosts(t, b, "a", a)
	for _, c := range []*testCluster{a, b} {
		// Producers resend across the failover: deduplication keeps each once.
		expectHTTP(t, "POST", c.brokers[0].webURL+"/admin/v2/namespaces/public/geo/deduplication", "true", http.StatusNoContent)
	}
	topic := "persistent://public/geo/orders"

	sent := map[string][]string{}
	var mu sync.Mutex
	var ackedA, ackedB atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); geoProduceUntil(t, "a", ga.brokerURL, topic, stop, sent, &mu, &ackedA) }()
	go func() { defer wg.Done(); geoProduceUntil(t, "b", gb.brokerURL, topic, stop, sent, &mu, &ackedB) }()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	adminEventually(t, "replication running both ways", func() bool {
		return replicatedOut(t, a.liveWebURL(), topic, "b") > 200 && replicatedOut(t, b.liveWebURL(), topic, "a") > 200
	})
	owner := a.owner(topic)
	a.brokers[owner].kill(t)
	a.down[owner] = true
	killedAt := ackedA.Load()
	t.Logf("killed a's broker b%d, the owner of %s, after %d receipts in a, %d in b", owner, topic, killedAt, ackedB.Load())
	killed := time.Now()
	// The new owner's replicator to b starts from the durable cursor (its
	// counters start at 0).
	adminEventually(t, "a's replication to b resumed on the new owner", func() bool {
		return replicatedOut(t, a.liveWebURL(), topic, "b") > 0
	})
	t.Logf("a's replication to b resumed on the new owner %v after the kill (lease TTL %v)", time.Since(killed).Round(10*time.Millisecond), clusterLeaseTTL)
	adminEventually(t, "a's producer served by the new owner", func() bool { return ackedA.Load() > killedAt+300 })
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	if now := a.owner(topic); now == owner {
		t.Fatalf("a's topic still owned by the killed broker b%d", owner)
	}

	total := 0
	for _, vs := range sent {
		total += len(vs)
	}
	t.Logf("%d messages sent (%d in a, %d in b)", total, ackedA.Load(), ackedB.Load())
	for _, c := range []struct {
		name string
		tc   *testCluster
	}{{"a", a}, {"b", b}} {
		got := receiveAll(t, c.tc.serviceURL(), topic, "check", total, 2*time.Second)
		checkExactlyOnceInOrder(t, c.name, got, sent)
		for _, m := range got {
			src, _, _ := strings.Cut(m.value, "-")
			if want := map[bool]string{true: "", false: src}[src == c.name]; m.from != want {
				t.Fatalf("%s: %s has replicated_from %q, want %q", c.name, m.value, m.from, want)
			}
		}
	}
	// The stats of the replicated topic, asked of any broker of each
	// cluster (redirected to the owner): both links up, nothing behind.
	adminEventually(t, "both links connected with no backlog", func() bool {
		sa, sb := replicationStats(t, a.liveWebURL(), topic)["b"], replicationStats(t, b.liveWebURL(), topic)["a"]
		return sa.Connected && sa.ReplicationBacklog == 0 && sb.Connected && sb.ReplicationBacklog == 0
	})
	t.Logf("took %v", time.Since(start))
}

// A replicated subscription between clusters of 2 brokers: half consumed
// in a, the consumer that fails over to b starts where a left off, nothing
// skipped. The progress is posted to any broker of b (a multi-host
// serviceUrl) and redirected to the topic's owner there.
func TestGeoReplicatedSubscriptionBetweenClusters(t *testing.T) {
	if metadataStore != "" {
		t.Skip("cluster tests run their own etcd members: they run once, without MB_TEST_METADATA_STORE")
	}
	etcd := etcdtest.Start(t, 1)
	gw := s3test.Start(t)
	a := startGeoCluster(t, etcd, gw, "a", 2)
	b := startGeoCluster(t, etcd, gw, "b", 2)
	geoLink(t, "public/geo", "", a.geo("a"), b.geo("b"))
	registerAllHosts(t, a, "b", b)
	registerAllHosts(t, b, "a", a)
	topic := "persistent://public/geo/subs"
	ca := newClient(t, a.serviceURL())
	defer ca.Close()
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "rs", ReplicateSubscriptionState: true, AckGroupingOptions: &pulsar.AckGroupingOptions{MaxSize: 1}}
	cons, err := ca.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 100 {
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
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
	for _, p := range b.brokers { // any broker answers for the owner
		adminEventually(t, "b's subscription at a's position", func() bool {
			code, body := httpDo(t, "GET", restTopic(p.webURL, topic)+"/stats", "")
			return code == http.StatusOK && strings.Contains(body, `"rs":{`) && strings.Contains(body, `"msgBacklog":50,`)
		})
	}
	cb := newClient(t, b.serviceURL())
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
