package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/metafault"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/server"
)

// startFaultyServer starts a broker whose metadata store (embedded, or etcd
// in the etcd run) is wrapped by metafault.
func startFaultyServer(t *testing.T) (*server.Server, *metafault.Store) {
	t.Helper()
	var faults *metafault.Store
	s := startServer(t, server.Options{Metadata: server.Metadata{Wrap: func(st meta.Store) meta.Store {
		faults = metafault.ForTest(t, st)
		return faults
	}}})
	return s, faults
}

// TestSlowNamespaceMetadataDoesNotDelayOthers: with every metadata read of
// one namespace taking 5 s, lookups, producer creation and sends in another
// namespace, through the same client and connection, take well under that;
// the slow namespace's producer is created in the end.
func TestSlowNamespaceMetadataDoesNotDelayOthers(t *testing.T) {
	s, faults := startFaultyServer(t)
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/public/slow", "", 204)
	slowNS := naming.Namespace{Tenant: "public", Name: "slow"}
	defer faults.Inject(metafault.Rule{Match: metafault.NamespacePolicies(slowNS), Ops: []metafault.Op{metafault.OpGet}, Delay: 5 * time.Second})()
	client := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL(), OperationTimeout: 30 * time.Second})

	slowDone := make(chan error, 1)
	go func() {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: strings.Replace(uniqueTopic(t), "/default/", "/slow/", 1)})
		if err == nil {
			p.Close()
		}
		slowDone <- err
	}()
	// The slow namespace's lookup is in progress on the client's connection.
	deadline := time.Now().Add(10 * time.Second)
	for faults.CallsMatching(metafault.OpGet, metafault.Namespace(slowNS)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow namespace was never read")
		}
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	topic := uniqueTopic(t)
	if _, err := client.TopicPartitions(topic); err != nil {
		t.Fatal(err)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("lookup, producer and 10 sends in public/default took %v while public/slow's metadata takes 5s", d)
	}
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("producer in the slow namespace: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("producer in the slow namespace never created")
	}
}

// TestProducerRetriableMetadataError: a producer whose topic policies
// cannot be read is refused with MetadataError (not an authorization or
// not-found error), and created once the store recovers.
func TestProducerRetriableMetadataError(t *testing.T) {
	s, faults := startFaultyServer(t)
	topic := uniqueTopic(t)
	name, _ := naming.ParseTopic(topic)
	remove := faults.Inject(metafault.Rule{Match: metafault.TopicPolicies(name), Fail: true})
	client := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL()})
	_, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err == nil || !strings.Contains(err.Error(), "MetadataError") {
		t.Fatalf("producer with unreadable policies: %v, want a MetadataError", err)
	}
	remove()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatalf("producer after the store recovered: %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}
