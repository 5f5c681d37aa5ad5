package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// sendToTopics sends n[i] messages to topic i of a fresh namespace and
// returns the namespace and topics.
func sendToTopics(t *testing.T, s *server.Server, brokerURL string, n ...int) (string, []string) {
	t.Helper()
	ns := fmt.Sprintf("public/m%d", time.Now().UnixNano())
	if code, body := httpDo(t, "PUT", s.WebURL()+"/admin/v2/namespaces/"+ns, ""); code != 204 {
		t.Fatalf("create namespace: %d %s", code, body)
	}
	client := newClient(t, brokerURL)
	topics := make([]string, len(n))
	for i, count := range n {
		topics[i] = fmt.Sprintf("persistent://%s/t%d", ns, i)
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topics[i], DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < count; j++ {
			if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("m")}); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(p.Close)
	}
	return ns, topics
}

func TestMetricsTopicLevel(t *testing.T) {
	s := startServer(t, server.Options{})
	ns, topics := sendToTopics(t, s, s.BrokerURL(), 2, 3)
	for i, want := range []float64{2, 3} {
		series := fmt.Sprintf(`pulsar_in_messages_total{cluster="standalone",namespace="%s",topic="%s"}`, ns, topics[i])
		if v := metricValue(t, s.WebURL(), series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if v := metricValue(t, s.WebURL(), fmt.Sprintf(`pulsar_producers_count{cluster="standalone",namespace="%s",topic="%s"}`, ns, topics[0])); v != 1 {
		t.Errorf("producers of %s: %v", topics[0], v)
	}
}

// TestMetricsNamespaceLevel: with topic-level metrics off, the same names
// come summed per namespace and no series names a topic.
func TestMetricsNamespaceLevel(t *testing.T) {
	s := startServer(t, server.Options{HideTopicLevelMetrics: true})
	ns, _ := sendToTopics(t, s, s.BrokerURL(), 2, 3)
	labels := fmt.Sprintf(`{cluster="standalone",namespace="%s"}`, ns)
	for name, want := range map[string]float64{
		"pulsar_in_messages_total": 5, "pulsar_producers_count": 2, "pulsar_topics_count": 2,
		"pulsar_msg_backlog": 0, "pulsar_subscriptions_count": 0,
	} {
		if v := metricValue(t, s.WebURL(), name+labels); v != want {
			t.Errorf("%s%s = %v, want %v", name, labels, v, want)
		}
	}
	_, body := httpDo(t, "GET", s.WebURL()+"/metrics", "")
	if strings.Contains(body, `topic="`) {
		t.Error("namespace-level metrics have a topic label")
	}
}

// TestMetricsNamespaceLevelFlag: `mb standalone --expose-topic-level-metrics=false`.
func TestMetricsNamespaceLevelFlag(t *testing.T) {
	p := startProc(t, t.TempDir(), 0, 0, "--expose-topic-level-metrics=false")
	client := newClient(t, p.brokerURL)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://public/default/flag"})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, p.webURL, `pulsar_in_messages_total{cluster="standalone",namespace="public/default"}`); v != 1 {
		t.Fatalf("namespace-level in messages: %v", v)
	}
}
