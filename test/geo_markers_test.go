package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// startMarkerServer is a geo cluster whose replicated subscriptions travel
// only by markers (the admin-API sync is off), snapshots every 100 ms.
func startMarkerServer(t *testing.T, name string) (geoCluster, *server.Server) {
	t.Helper()
	s := startServer(t, server.Options{ClusterName: name, DisableReplicatedSubscriptionsAdminSync: true,
		ReplicatedSubscriptionsSnapshotFrequency: 100 * time.Millisecond})
	return geoCluster{name: name, brokerURL: s.BrokerURL(), webURL: s.WebURL()}, s
}

type subStats struct {
	MsgBacklog int64 `json:"msgBacklog"`
}

type markerTopicStats struct {
	MsgInCounter  int64               `json:"msgInCounter"`
	Subscriptions map[string]subStats `json:"subscriptions"`
}

func topicStatsOf(t *testing.T, webURL, topic string) (markerTopicStats, bool) {
	t.Helper()
	code, body := httpDo(t, "GET", restTopic(webURL, topic)+"/stats", "")
	var st markerTopicStats
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		return st, false
	}
	return st, true
}

// A consumer of a replicated subscription acknowledges on cluster a all of
// the first 50 messages but message 30; the subscription's position goes to
// b by Pulsar's markers alone (snapshot request/response, snapshot, update),
// and a consumer failing over to b resumes at 30 — never past it — then gets
// everything after in order. Markers are never seen: not by a's consumer,
// not by a reader on b, not in peek, msgInCounter or backlogs.
func TestGeoReplicatedSubscriptionMarkers(t *testing.T) {
	a, _ := startMarkerServer(t, "a")
	b, _ := startMarkerServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/markers"
	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "rs", Type: pulsar.Shared,
		ReplicateSubscriptionState: true, AckGroupingOptions: &pulsar.AckGroupingOptions{MaxSize: 1}}
	cons, err := ca.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// Both links up before the first message: a topic that starts
	// replicating does so from its end, and a response written before
	// that would never leave (its snapshot would wait for the timeout).
	cb := newClient(t, b.brokerURL)
	defer cb.Close()
	prodB, err := cb.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prodB.Close()
	adminEventually(t, "links a->b and b->a connected", func() bool {
		return replicationStats(t, a.webURL, topic)["b"].Connected && replicationStats(t, b.webURL, topic)["a"].Connected
	})
	started := func() float64 { return metricValue(t, a.webURL, "mb_replicated_subscriptions_snapshots_started_total") }
	completed := func() float64 {
		return metricValue(t, a.webURL, "mb_replicated_subscriptions_snapshots_completed_total")
	}
	// Ten groups of ten, each followed by a snapshot started after its last
	// message: snapshots are taken while messages come in, until one
	// started after the last message completes; then (quiet) no more start.
	for g := range 10 {
		beforeGroup := started()
		for i := range 10 {
			if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(g*10 + i))}); err != nil {
				t.Fatal(err)
			}
		}
		var lastS, lastC float64
		var since time.Time
		adminEventually(t, "snapshots quiet after a group", func() bool {
			s, c := started(), completed()
			if s != lastS || c != lastC {
				lastS, lastC, since = s, c, time.Now()
				return false
			}
			return s == c && s > beforeGroup && time.Since(since) >= 500*time.Millisecond
		})
	}
	for i := range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("a: waiting for %d: %v", i, err)
		}
		if got := string(m.Payload()); got != fmt.Sprint(i) {
			t.Fatalf("a delivered %q, want %d (a marker must never be delivered)", got, i)
		}
		if i < 50 && i != 30 {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The update reaches b: its subscription is created there and moved
	// to the snapshot before message 30.
	var backlogB int64
	adminEventually(t, "b's subscription moved by an update marker", func() bool {
		st, ok := topicStatsOf(t, b.webURL, topic)
		s, has := st.Subscriptions["rs"]
		backlogB = s.MsgBacklog
		return ok && has && s.MsgBacklog > 0 && s.MsgBacklog <= 80
	})
	if backlogB < 70 {
		t.Fatalf("b's backlog %d: the subscription went past message 30, which a never acknowledged", backlogB)
	}
	cons.Close()
	if v := metricValue(t, b.webURL, "mb_replicated_subscriptions_updates_applied_total"); v < 1 {
		t.Fatalf("b applied %v updates", v)
	}
	// Markers are not messages: 100 in on each side, and a's backlog
	// (all of the last 50 and 30 unacked) counts messages only.
	stA, _ := topicStatsOf(t, a.webURL, topic)
	stB, _ := topicStatsOf(t, b.webURL, topic)
	if stA.MsgInCounter != 100 || stB.MsgInCounter != 100 {
		t.Fatalf("msgInCounter a=%d b=%d, want 100 each", stA.MsgInCounter, stB.MsgInCounter)
	}
	if got := stA.Subscriptions["rs"].MsgBacklog; got != 51 {
		t.Fatalf("a's backlog %d, want 51 (messages 30 and 50-99)", got)
	}
	// Peek on b shows the first message the failover consumer gets.
	peekFirst := ""
	code, body := httpDo(t, "GET", restTopic(b.webURL, topic)+"/subscription/rs/position/1", "")
	if code == http.StatusOK {
		peekFirst = body
	}
	opts.Type = pulsar.Failover
	consB, err := cb.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer consB.Close()
	first := -1
	for want := -1; want < 100; want++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := consB.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("b: waiting after %d: %v", want, err)
		}
		var got int
		if _, err := fmt.Sscan(string(m.Payload()), &got); err != nil {
			t.Fatalf("b delivered %q (a marker?)", m.Payload())
		}
		if first < 0 {
			first, want = got, got
			if got > 30 || got < 20 {
				t.Fatalf("b resumed at %d, want at most 30 (never past the unacked message) and near it (>= 20)", got)
			}
			if peekFirst != fmt.Sprint(got) {
				t.Fatalf("peek on b shows %q, the consumer got %d", peekFirst, got)
			}
		}
		if got != want {
			t.Fatalf("b delivered %d, want %d", got, want)
		}
		consB.Ack(m)
		if got == 99 {
			break
		}
	}
	// A reader on b from the start sees the 100 messages and no marker,
	// and HasNext ends (the last message id is not a marker's).
	r, err := cb.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for r.HasNext() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reader after %d messages: %v", n, err)
		}
		if got := string(m.Payload()); got != fmt.Sprint(n) {
			t.Fatalf("reader got %q, want %d", got, n)
		}
		n++
	}
	if n != 100 {
		t.Fatalf("reader read %d messages, want 100", n)
	}
}
