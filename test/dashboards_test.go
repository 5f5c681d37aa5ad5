package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
	"sigs.k8s.io/yaml"
)

// metricRef matches the broker's metric names in a PromQL expression; the
// other identifiers (functions, labels, variables) have no such prefix.
var metricRef = regexp.MustCompile(`\b(?:pulsar|mb)_[a-zA-Z0-9_]+\b`)

// TestDashboardMetricsExist checks that every metric the Grafana dashboard
// and the Prometheus alert rules in deploy/ query is in a broker's /metrics
// output. The broker runs with what makes every family appear: token
// authentication (and one refused client), tiered storage configured, a
// loaded topic with a backlog, and a replication link to a cluster that
// does not answer.
func TestDashboardMetricsExist(t *testing.T) {
	refs := map[string][]string{} // metric -> files referring to it
	collect := func(file string, exprs []string) {
		if len(exprs) == 0 {
			t.Fatalf("%s: no queries found", file)
		}
		for _, e := range exprs {
			for _, m := range metricRef.FindAllString(e, -1) {
				refs[m] = append(refs[m], file)
			}
		}
	}
	collect("deploy/grafana/messagebus.json", dashboardExprs(t, "../deploy/grafana/messagebus.json"))
	collect("deploy/prometheus/alerts.yml", alertExprs(t, "../deploy/prometheus/alerts.yml"))

	keyFile, key := secretKey(t)
	s := startServer(t, server.Options{
		Security: server.Security{AuthTokenSecretKey: keyFile, SuperuserRoles: []string{"admin"}},
		Access:   server.Access{GRPCAddr: "127.0.0.1:0"},
		Offload:  server.Offload{Driver: "s3", Bucket: "b", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true},
	})
	tok := signToken(t, key, "admin", time.Time{})
	web := s.WebURL()
	expectAuthHTTP(t, tok, "PUT", web+"/admin/v2/clusters/unreachable", `{"serviceUrl":"http://127.0.0.1:1","brokerServiceUrl":"pulsar://127.0.0.1:1"}`, http.StatusNoContent)
	expectAuthHTTP(t, tok, "POST", web+"/admin/v2/tenants/public", `{"adminRoles":[],"allowedClusters":["standalone","unreachable"]}`, http.StatusNoContent)
	expectAuthHTTP(t, tok, "PUT", web+"/admin/v2/namespaces/public/dash", "", http.StatusNoContent)
	expectAuthHTTP(t, tok, "POST", web+"/admin/v2/namespaces/public/dash/replication", `["standalone","unreachable"]`, http.StatusNoContent)

	topic := "persistent://public/dash/t"
	c := tokenClient(t, s.BrokerURL(), tok)
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// One refused client, for the authentication failure counter.
	bad := tokenClient(t, s.BrokerURL(), "not-a-token")
	if _, err := bad.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil {
		t.Fatal("a producer with a bad token was accepted")
	}

	// Per-topic and replication families appear once the topic is loaded
	// and its replicator runs: poll until all are there or time is up.
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		have := scrapeNames(t, web)
		missing = missing[:0]
		for m := range refs {
			if !have[m] {
				missing = append(missing, fmt.Sprintf("%s (in %s)", m, strings.Join(dedup(refs[m]), ", ")))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("metrics not exported by the broker:\n%s", strings.Join(missing, "\n"))
		}
	}
	t.Logf("%d metric names checked", len(refs))
}

// scrapeNames returns the sample names and metric family names of /metrics.
func scrapeNames(t *testing.T, webURL string) map[string]bool {
	t.Helper()
	have := map[string]bool{}
	for _, line := range strings.Split(metricsText(t, webURL), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			have[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(name, "{ "); i >= 0 {
			name = name[:i]
		}
		have[name] = true
	}
	return have
}

// dashboardExprs returns every target's expression and templating query.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Fatalf("%s: panel %q has no query", path, p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Fatalf("%s: panel %q has an empty query", path, p.Title)
			}
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out = append(out, q)
		}
	}
	return out
}

// alertExprs returns every rule's expression; each rule must have a name.
func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
				For   string `json:"for"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Fatalf("%s: group %s has a rule without a name or expression", path, g.Name)
			}
			out = append(out, r.Expr)
		}
	}
	return out
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
