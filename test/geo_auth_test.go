package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// A link's credentials: a bad token and a role that is not a replicator
// are reported in the stats (and counted in a metric); the link recovers
// when the cluster's credentials are updated, and nothing is lost or
// duplicated meanwhile.
func TestGeoReplicationCredentials(t *testing.T) {
	type side struct {
		s     *server.Server
		key   []byte
		admin pulsaradmin.Client
		token string // superuser
	}
	mk := func(name string) side {
		path, key := secretKey(t)
		s := startServer(t, server.Options{ClusterName: name, Security: server.Security{
			AuthTokenSecretKey: path, SuperuserRoles: []string{"admin"}, ReplicatorRoles: []string{"repl"}}})
		tok := signToken(t, key, "admin", time.Time{})
		return side{s: s, key: key, admin: tokenAdmin(t, s.WebURL(), tok), token: tok}
	}
	a, b := mk("a"), mk("b")
	ns := "public/geo"
	setup := func(local side, remoteName string, remote side, params string) {
		t.Helper()
		if err := local.admin.Clusters().Create(utils.ClusterData{Name: remoteName, ServiceURL: remote.s.WebURL(),
			BrokerServiceURL: remote.s.BrokerURL(), AuthenticationPlugin: "org.apache.pulsar.client.impl.auth.AuthenticationToken",
			AuthenticationParameters: params}); err != nil {
			t.Fatal(err)
		}
		if err := local.admin.Tenants().Update(utils.TenantData{Name: "public", AdminRoles: []string{}, AllowedClusters: []string{"a", "b"}}); err != nil {
			t.Fatal(err)
		}
		if err := local.admin.Namespaces().CreateNamespace(ns); err != nil {
			t.Fatal(err)
		}
		if err := local.admin.Namespaces().SetNamespaceReplicationClusters(ns, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		for _, role := range []string{"app", "repl"} {
			if err := local.admin.Namespaces().GrantNamespacePermission(nsName(t, ns), role, []utils.AuthAction{"produce"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	setup(a, "b", b, "token:not-a-token")
	setup(b, "a", a, "token:"+signToken(t, a.key, "admin", time.Time{}))
	topic := "persistent://" + ns + "/creds"

	ca := tokenClient(t, a.s.BrokerURL(), a.token)
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := map[string][]string{}
	for i := 0; i < 20; i++ {
		v := fmt.Sprint("m", i)
		sent["k"] = append(sent["k"], v)
		if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Key: "k", Payload: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	statsOf := func() string {
		st, err := a.admin.Topics().GetStats(topicName(t, topic))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%+v", st.Replication["b"])
	}
	linkState := func() (connected bool, backlog int64, lastErr string) {
		code, body := httpDoAuth(t, "GET", restTopic(a.s.WebURL(), topic)+"/stats", a.token)
		if code != http.StatusOK {
			t.Fatalf("stats: %d %s", code, body)
		}
		var st struct {
			Replication map[string]struct {
				Connected          bool   `json:"connected"`
				ReplicationBacklog int64  `json:"replicationBacklog"`
				LastError          string `json:"lastError"`
			} `json:"replication"`
		}
		decodeJSON(t, body, &st)
		r := st.Replication["b"]
		return r.Connected, r.ReplicationBacklog, r.LastError
	}
	adminEventually(t, "a bad token reported", func() bool {
		c, backlog, e := linkState()
		return !c && backlog == 20 && strings.Contains(e, "AuthenticationError")
	})
	if m := metricsText(t, a.s.WebURL()); !strings.Contains(m, `mb_replication_errors_total{remote_cluster="b"}`) ||
		!strings.Contains(m, `pulsar_replication_backlog{cluster="a",namespace="public/geo",remote_cluster="b",topic="`+topic+`"} 20`) {
		t.Fatalf("metrics lack the failing link:\n%s", grepLines(m, "replication"))
	}

	// A valid token of a role that is not a replicator: refused to set replicated_from.
	update := func(role string) {
		t.Helper()
		if err := a.admin.Clusters().Update(utils.ClusterData{Name: "b", ServiceURL: b.s.WebURL(), BrokerServiceURL: b.s.BrokerURL(),
			AuthenticationPlugin: "token", AuthenticationParameters: "token:" + signToken(t, b.key, role, time.Time{})}); err != nil {
			t.Fatal(err)
		}
	}
	update("app")
	adminEventually(t, "a non-replicator role refused", func() bool {
		_, backlog, e := linkState()
		return backlog == 20 && strings.Contains(e, "may not publish replicated messages")
	})

	update("repl")
	adminEventually(t, "the link recovered: "+statsOf(), func() bool {
		c, backlog, _ := linkState()
		return c && backlog == 0
	})
	cb := tokenClient(t, b.s.BrokerURL(), b.token)
	cons, err := cb.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []geoReceived
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			break
		}
		got = append(got, geoReceived{key: m.Key(), value: string(m.Payload()), from: m.GetReplicatedFrom()})
		cons.Ack(m)
	}
	checkExactlyOnceInOrder(t, "b", got, sent)
}

func httpDoAuth(t *testing.T, method, url, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metricsText(t *testing.T, webURL string) string {
	t.Helper()
	code, body := httpDo(t, "GET", webURL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func decodeJSON(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}
