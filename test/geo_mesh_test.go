package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// geoProduce sends values <cluster>-<i> for i in [from, to) with keys
// <cluster>-k<i%4> to topic on c, waits for every receipt and records them
// in sent (by key, in send order).
func geoProduce(t *testing.T, c geoCluster, topic string, from, to int, sent map[string][]string, mu *sync.Mutex) {
	t.Helper()
	cl := newClient(t, c.brokerURL)
	defer cl.Close()
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 20, BatchingMaxPublishDelay: 5 * time.Millisecond})
	if err != nil {
		t.Error(err)
		return
	}
	defer p.Close()
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		key := fmt.Sprintf("%s-k%d", c.name, i%4)
		v := fmt.Sprintf("%s-%d", c.name, i)
		mu.Lock()
		sent[key] = append(sent[key], v)
		mu.Unlock()
		wg.Add(1)
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("send %s: %v", v, err)
			}
		})
		if i%50 == 49 {
			p.FlushWithCtx(context.Background())
		}
	}
	p.FlushWithCtx(context.Background())
	wg.Wait()
}

// Three clusters in a full mesh, producers in all three, one cluster
// killed with SIGKILL while the others replicate to it, then restarted:
// every message appears exactly once in every cluster, in order per key
// (per source), and the replicated ones say where they came from.
func TestGeoFullMeshKill9(t *testing.T) {
	skipOnEtcd(t)
	type node struct {
		geoCluster
		dir                  string
		brokerPort, httpPort int
		p                    *proc
	}
	nodes := map[string]*node{}
	var cs []geoCluster
	for _, n := range []string{"a", "b", "c"} {
		nd := &node{dir: t.TempDir(), brokerPort: freePort(t), httpPort: freePort(t)}
		nd.p = startProc(t, nd.dir, nd.brokerPort, nd.httpPort, "--cluster-name", n)
		nd.geoCluster = geoCluster{name: n, brokerURL: nd.p.brokerURL, webURL: nd.p.webURL}
		nodes[n] = nd
		cs = append(cs, nd.geoCluster)
	}
	geoLink(t, "public/mesh", "", cs...)
	topic := "persistent://public/mesh/t"
	a, b, c := nodes["a"], nodes["b"], nodes["c"]

	sent := map[string][]string{}
	var mu sync.Mutex
	for _, nd := range []*node{a, b, c} {
		geoProduce(t, nd.geoCluster, topic, 0, 200, sent, &mu)
	}

	// a and c go on producing while b dies and comes back.
	var wg sync.WaitGroup
	for _, nd := range []*node{a, c} {
		wg.Add(1)
		go func(nd *node) {
			defer wg.Done()
			geoProduce(t, nd.geoCluster, topic, 200, 1200, sent, &mu)
		}(nd)
	}
	adminEventually(t, "a replicating to b", func() bool {
		return replicationStats(t, a.webURL, topic)["b"].MsgOutCounter > 400
	})
	b.p.kill(t)
	adminEventually(t, "a's link to b down with a backlog", func() bool {
		st := replicationStats(t, a.webURL, topic)["b"]
		return !st.Connected && st.ReplicationBacklog > 0 && st.LastError != ""
	})
	b.p = startProc(t, b.dir, b.brokerPort, b.httpPort, "--cluster-name", "b")
	wg.Wait()
	geoProduce(t, b.geoCluster, topic, 200, 300, sent, &mu)

	total := 0
	for _, vs := range sent {
		total += len(vs)
	}
	for _, nd := range []*node{a, b, c} {
		got := receiveAll(t, nd.brokerURL, topic, "check", total, 3*time.Second)
		checkExactlyOnceInOrder(t, nd.name, got, sent)
		for _, m := range got {
			src, _, _ := strings.Cut(m.value, "-")
			if want := map[bool]string{true: "", false: src}[src == nd.name]; m.from != want {
				t.Fatalf("%s: %s has replicated_from %q, want %q", nd.name, m.value, m.from, want)
			}
		}
	}
	for _, nd := range []*node{a, b, c} {
		for remote, st := range replicationStats(t, nd.webURL, topic) {
			if !st.Connected || st.ReplicationBacklog != 0 {
				t.Errorf("%s -> %s: %+v", nd.name, remote, st)
			}
		}
	}
}

// A restarted broker resumes replication on its own: no client touches the
// topic after the restart, and the remote never had it loaded.
func TestGeoReplicationResumesAfterRestart(t *testing.T) {
	skipOnEtcd(t)
	type node struct {
		dir                  string
		brokerPort, httpPort int
		p                    *proc
		c                    geoCluster
	}
	mk := func(name string) *node {
		n := &node{dir: t.TempDir(), brokerPort: freePort(t), httpPort: freePort(t)}
		n.p = startProc(t, n.dir, n.brokerPort, n.httpPort, "--cluster-name", name)
		n.c = geoCluster{name: name, brokerURL: n.p.brokerURL, webURL: n.p.webURL}
		return n
	}
	a, b := mk("a"), mk("b")
	geoLink(t, "public/geo", "", a.c, b.c)
	b.p.kill(t)
	topic := "persistent://public/geo/resume"
	sent := map[string][]string{}
	var mu sync.Mutex
	geoProduce(t, a.c, topic, 0, 50, sent, &mu)
	a.p.kill(t)
	b.p = startProc(t, b.dir, b.brokerPort, b.httpPort, "--cluster-name", "b")
	a.p = startProc(t, a.dir, a.brokerPort, a.httpPort, "--cluster-name", "a")
	got := receiveAll(t, b.c.brokerURL, topic, "check", 50, 2*time.Second)
	checkExactlyOnceInOrder(t, "b", got, sent)
}
