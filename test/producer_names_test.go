package test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// brokerAssigned matches the names the broker gives producers without one:
// {cluster}-{generator id}-{seq}, as Pulsar's DistributedIdGenerator.
var brokerAssigned = regexp.MustCompile(`^standalone-(\d+)-(\d+)$`)

// unnamedProducers creates n producers without a name on a fresh topic and
// returns the names the broker gave them.
func unnamedProducers(t *testing.T, brokerURL string, n int) []string {
	t.Helper()
	client := newClient(t, brokerURL)
	defer client.Close()
	topic := uniqueTopic(t)
	var names []string
	for range n {
		pr, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, pr.Name())
		pr.Close()
	}
	return names
}

// generatorID returns the generator id of a broker-assigned name.
func generatorID(t *testing.T, name string) string {
	t.Helper()
	m := brokerAssigned.FindStringSubmatch(name)
	if m == nil {
		t.Fatalf("broker-assigned producer name %q is not standalone-{generator id}-{seq}", name)
	}
	return m[1]
}

// TestProducerNamesDifferAfterKill: each start of the broker, also after
// kill -9, names producers with a generator id no earlier start used.
func TestProducerNamesDifferAfterKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	seen := map[string]bool{}
	usedIDs := map[string]bool{}
	for start := range 3 {
		if start > 0 {
			p.kill(t)
			p = startProc(t, dir, p.brokerPort, p.httpPort)
		}
		names := unnamedProducers(t, p.brokerURL, 3)
		id := generatorID(t, names[0])
		if usedIDs[id] {
			t.Fatalf("start %d reuses generator id %s: %v", start, id, names)
		}
		usedIDs[id] = true
		for i, n := range names {
			if generatorID(t, n) != id || n != fmt.Sprintf("standalone-%s-%d", id, i) {
				t.Fatalf("start %d: names %v, want standalone-%s-0, -1, -2", start, names, id)
			}
			if seen[n] {
				t.Fatalf("start %d: name %s was given before a restart too", start, n)
			}
			seen[n] = true
		}
	}
}

// TestProducerReconnectsUnderOldNameAfterKill: the Go client re-sends the
// name the broker gave its producer when it reconnects. After kill -9 and a
// restart, that producer and a new unnamed one from another client must both
// be served, under different names, with no ProducerBusy.
func TestProducerReconnectsUnderOldNameAfterKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	topic := uniqueTopic(t)
	client1, err := pulsar.NewClient(pulsar.ClientOptions{URL: p.brokerURL, OperationTimeout: 30 * time.Second,
		ConnectionTimeout: 5 * time.Second, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client1.Close()
	old, err := client1.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldName := old.Name()
	generatorID(t, oldName)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := old.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("before")}); err != nil {
		t.Fatal(err)
	}

	p.kill(t)
	p2 := startProc(t, dir, p.brokerPort, p.httpPort)
	// The new producer comes first or second, as the old client's reconnect
	// backoff decides; with reused names either order collides.
	client2 := newClient(t, p2.brokerURL)
	defer client2.Close()
	fresh, err := client2.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatalf("new producer after restart: %v", err)
	}
	defer fresh.Close()
	if fresh.Name() == oldName {
		t.Fatalf("new producer got the old producer's name %s", oldName)
	}
	generatorID(t, fresh.Name())
	want := []string{oldName, fresh.Name()}
	slices.Sort(want)
	// The old producer reconnects under its old name, as the broker's
	// stats show. Only then is it used, and its Name() is not read:
	// pulsar-client-go v0.19.0 writes its name and encryptor on reconnect
	// without synchronising with Name() or with a queued send (-race).
	var got []string
	adminEventually(t, "both producers connected", func() bool {
		got = publisherNames(t, p2.webURL, topic)
		return slices.Equal(got, want)
	})
	for i, pr := range []pulsar.Producer{old, fresh} {
		if _, err := pr.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("after")}); err != nil {
			t.Fatalf("producer %d (0: old, 1: new) after restart: %v", i, err)
		}
	}
	if got := publisherNames(t, p2.webURL, topic); !slices.Equal(got, want) {
		t.Fatalf("publishers %v, want %v", got, want)
	}
}

// publisherNames returns the sorted producer names of a topic's stats.
func publisherNames(t *testing.T, webURL, topic string) []string {
	t.Helper()
	code, body := httpDo(t, "GET", restTopic(webURL, topic)+"/stats", "")
	if code != 200 {
		t.Fatalf("stats: %d %s", code, body)
	}
	var st struct {
		Publishers []struct {
			ProducerName string `json:"producerName"`
		} `json:"publishers"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pub := range st.Publishers {
		names = append(names, pub.ProducerName)
	}
	slices.Sort(names)
	return names
}

// TestDedupStateNotInheritedByNewProducer: with deduplication on, a producer
// created after kill -9 and a restart gets a name of its own, so the
// sequence ids of an earlier producer do not make its first messages
// duplicates.
func TestDedupStateNotInheritedByNewProducer(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	if code, body := httpDo(t, "POST", p.webURL+"/admin/v2/namespaces/public/default/deduplication", "true"); code != 204 {
		t.Fatalf("enable deduplication: %d %s", code, body)
	}
	topic := uniqueTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client1 := newClient(t, p.brokerURL)
	first, err := client1.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	firstName := first.Name()
	generatorID(t, firstName)
	var want []string
	for i := range 10 {
		payload := fmt.Sprintf("first-%d", i)
		if _, err := first.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, payload)
	}
	first.Close()
	client1.Close()

	p.kill(t)
	p2 := startProc(t, dir, p.brokerPort, p.httpPort)
	client2 := newClient(t, p2.brokerURL)
	defer client2.Close()
	second, err := client2.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.Name() == firstName {
		t.Fatalf("new producer after restart got the earlier producer's name %s", firstName)
	}
	// Sequence ids set by hand: the client would otherwise continue from the
	// last_sequence_id the broker reports, hiding inherited state.
	for i := range 3 {
		seq := int64(i)
		payload := fmt.Sprintf("second-%d", i)
		if _, err := second.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(payload), SequenceID: &seq}); err != nil {
			t.Fatal(err)
		}
		want = append(want, payload)
	}

	reader, err := client2.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var got []string
	for reader.HasNext() {
		m, err := reader.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload()))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stored %v, want %v (the new producer's first messages must not be taken for duplicates)", got, want)
	}
}
