package test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestClusterRewriteUnloadedTopic: a topic unloaded before its WAL data was
// rewritten (no broker has it open) is rewritten by the owner of its
// bundle all the same, so its WAL objects are collected; its messages then
// read back from the segment object.
func TestClusterRewriteUnloadedTopic(t *testing.T) {
	// An open topic's entries are rewritten once older than the interval
	// (4 s): the topic is unloaded well before, so only the pass over
	// unloaded topics can rewrite them.
	c := startCluster(t, 2, "--wal-rewrite-interval", "4s", "--wal-gc-interval", "500ms")
	name := fmt.Sprintf("public/default/unloaded-%d", time.Now().UnixNano())
	topic := "persistent://" + name
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	owner := c.owner(topic)
	if code, body := httpDo(t, http.MethodPut, c.brokers[owner].webURL+"/admin/v2/persistent/"+name+"/unload", ""); code != http.StatusNoContent {
		t.Fatalf("unload: %d %s", code, body)
	}
	start := time.Now()
	for deadline := start.Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		unloaded := scrape(t, c.brokers[owner].webURL, "mb_cluster_rewrite_unloaded_topics_total")
		gone := 0.0 // any broker collects any broker's WAL objects
		for _, b := range c.brokers {
			gone += scrape(t, b.webURL, "mb_cluster_wal_gc_deleted_total")
		}
		if unloaded >= 1 && gone >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %v unloaded topics rewritten, %v WAL objects deleted (want >= 1 and >= %d)", unloaded, gone, n)
		}
	}
	t.Logf("WAL objects of the unloaded topic collected %v after its unload", time.Since(start).Round(time.Millisecond))
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "after",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for i, m := range receiveN(t, cons, n, 30*time.Second) {
		if string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Payload())
		}
	}
}
