package test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestClusterWALRewriteAndCollect: the owner rewrites a topic's WAL data
// into a segment object and deletes the WAL objects; after a kill -9 of the
// owner, the next owner serves every message from the segment object.
func TestClusterWALRewriteAndCollect(t *testing.T) {
	c := startCluster(t, 2, "--lease-ttl", "3s", "--wal-rewrite-interval", "500ms", "--wal-gc-interval", "500ms")
	topic := fmt.Sprintf("persistent://public/default/rewrite-%d", time.Now().UnixNano())
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	owner := c.owner(topic)
	deadline := time.Now().Add(30 * time.Second)
	for {
		segs := scrape(t, c.brokers[owner].webURL, "mb_cluster_rewrite_segments_total")
		gone := 0.0 // any broker collects any broker's WAL objects
		for _, b := range c.brokers {
			gone += scrape(t, b.webURL, "mb_cluster_wal_gc_deleted_total")
		}
		if segs >= 1 && gone >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %v segment objects written, %v WAL objects deleted (want >= 1 and >= %d)", segs, gone, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.brokers[owner].cmd.Process.Signal(syscall.SIGKILL)
	<-c.brokers[owner].exited
	c.down[owner] = true
	survivor, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.brokers[1-owner].brokerURL, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer survivor.Close()
	// The dead broker's bundles move once its lease (3 s) expires.
	var cons pulsar.Consumer
	for deadline := time.Now().Add(60 * time.Second); ; {
		cons, err = survivor.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "after",
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribe after the owner died: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	defer cons.Close()
	for i, m := range receiveN(t, cons, n, 60*time.Second) {
		if string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Payload())
		}
	}
	if c.owner(topic) == owner {
		t.Fatal("the killed broker still owns the topic")
	}
}
