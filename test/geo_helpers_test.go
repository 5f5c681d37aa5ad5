package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// geoCluster is one cluster of a geo-replication test: a broker (in-process
// or an mb process) and its URLs.
type geoCluster struct {
	name      string
	brokerURL string
	webURL    string
}

// geoLink registers every cluster in every other's metadata, allows them
// all in the public tenant and creates namespace ns replicating to all of
// them, on each cluster. authParams, when given, is what each cluster's
// record of the others holds (a token).
func geoLink(t *testing.T, ns string, authParams string, cs ...geoCluster) {
	t.Helper()
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	for _, c := range cs {
		for _, o := range cs {
			if o.name == c.name {
				continue
			}
			body := fmt.Sprintf(`{"serviceUrl":%q,"brokerServiceUrl":%q,"authenticationPlugin":"token","authenticationParameters":%q}`, o.webURL, o.brokerURL, authParams)
			if authParams == "" {
				body = fmt.Sprintf(`{"serviceUrl":%q,"brokerServiceUrl":%q}`, o.webURL, o.brokerURL)
			}
			expectHTTP(t, "PUT", c.webURL+"/admin/v2/clusters/"+o.name, body, http.StatusNoContent)
		}
		list, _ := json.Marshal(names)
		expectHTTP(t, "POST", c.webURL+"/admin/v2/tenants/public", fmt.Sprintf(`{"adminRoles":[],"allowedClusters":%s}`, list), http.StatusNoContent)
		expectHTTP(t, "PUT", c.webURL+"/admin/v2/namespaces/"+ns, "", http.StatusNoContent)
		expectHTTP(t, "POST", c.webURL+"/admin/v2/namespaces/"+ns+"/replication", string(list), http.StatusNoContent)
	}
}

// replicationStats reads the "replication" map of a topic's stats.
func replicationStats(t *testing.T, webURL, topic string) map[string]struct {
	ReplicationBacklog        int64   `json:"replicationBacklog"`
	Connected                 bool    `json:"connected"`
	MsgRateOut                float64 `json:"msgRateOut"`
	ReplicationDelayInSeconds int64   `json:"replicationDelayInSeconds"`
	MsgOutCounter             int64   `json:"msgOutCounter"`
	LastError                 string  `json:"lastError"`
} {
	t.Helper()
	code, body := httpDo(t, "GET", restTopic(webURL, topic)+"/stats", "")
	if code != http.StatusOK {
		t.Fatalf("stats of %s: %d %s", topic, code, body)
	}
	var st struct {
		Replication map[string]struct {
			ReplicationBacklog        int64   `json:"replicationBacklog"`
			Connected                 bool    `json:"connected"`
			MsgRateOut                float64 `json:"msgRateOut"`
			ReplicationDelayInSeconds int64   `json:"replicationDelayInSeconds"`
			MsgOutCounter             int64   `json:"msgOutCounter"`
			LastError                 string  `json:"lastError"`
		} `json:"replication"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st.Replication
}

// geoReceived is one message as a consumer saw it.
type geoReceived struct {
	key, value, from string
	props            map[string]string
	eventTime        time.Time
}

// receiveAll consumes from topic on url until want messages arrived, then
// waits quietly for a moment more to catch duplicates.
func receiveAll(t *testing.T, url, topic, sub string, want int, quiet time.Duration) []geoReceived {
	t.Helper()
	c := newClient(t, url)
	defer c.Close()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var out []geoReceived
	deadline := time.Now().Add(90 * time.Second)
	for {
		wait := time.Until(deadline)
		if len(out) >= want {
			wait = quiet
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			if len(out) >= want {
				return out
			}
			t.Fatalf("%s on %s: received %d of %d: %v", topic, url, len(out), want, err)
		}
		out = append(out, geoReceived{key: m.Key(), value: string(m.Payload()), from: m.GetReplicatedFrom(), props: m.Properties(), eventTime: m.EventTime()})
		cons.Ack(m)
	}
}

// checkExactlyOnceInOrder checks that every value of sent appears exactly
// once in got and that, per key, values keep their send order.
func checkExactlyOnceInOrder(t *testing.T, where string, got []geoReceived, sent map[string][]string) {
	t.Helper()
	seen := map[string]int{}
	byKey := map[string][]string{}
	for _, m := range got {
		seen[m.value]++
		byKey[m.key] = append(byKey[m.key], m.value)
	}
	total := 0
	for key, vals := range sent {
		total += len(vals)
		for _, v := range vals {
			if seen[v] != 1 {
				t.Fatalf("%s: %q seen %d times", where, v, seen[v])
			}
		}
		if strings.Join(byKey[key], ",") != strings.Join(vals, ",") {
			t.Fatalf("%s: key %s order:\n got  %v\n want %v", where, key, byKey[key], vals)
		}
	}
	if len(got) != total {
		t.Fatalf("%s: got %d messages, want %d", where, len(got), total)
	}
}
