package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"golang.org/x/crypto/bcrypt"

	"github.com/messagebus/messagebus/server"
)

// A link to a remote that takes credentials only over TLS: cluster b
// serves pulsar+ssl and HTTPS, refuses credentials on its plaintext
// listeners and authenticates tokens and basic users. a registers b with
// brokerServiceUrlTls, serviceUrlTls, brokerClientTlsEnabled and the CA in
// brokerClientTrustCertsFilePath: a partitioned topic replicates (its
// partitions created on b over HTTPS with the link's credentials), first
// with a token, then, after the cluster is updated, with basic auth.
func TestGeoReplicationTLSLinkCredentials(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "broker-b", true)
	keyPath, secret := secretKey(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), ".htpasswd")
	if err := os.WriteFile(htpasswd, []byte("replb:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startGeoServer(t, "a")
	sb := startServer(t, server.Options{ClusterName: "b", Security: server.Security{
		BrokerTLSAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key,
		RefusePlaintextCredentials: true, AuthTokenSecretKey: keyPath, BasicAuthConf: htpasswd,
		SuperuserRoles: []string{"admin"}, ReplicatorRoles: []string{"repl", "replb"},
	}})
	adminTok := signToken(t, secret, "admin", time.Time{})
	https := p.httpsClient(t, "", "")
	bAdmin := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, sb.WebTLSURL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := https.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s on b: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	ns := "public/geo"
	bAdmin("PUT", "/admin/v2/clusters/a", fmt.Sprintf(`{"serviceUrl":%q,"brokerServiceUrl":%q}`, a.webURL, a.brokerURL), http.StatusNoContent)
	// The link's roles administer the tenant: they create partitioned topics.
	bAdmin("POST", "/admin/v2/tenants/public", `{"adminRoles":["repl","replb"],"allowedClusters":["a","b"]}`, http.StatusNoContent)
	bAdmin("PUT", "/admin/v2/namespaces/"+ns, "", http.StatusNoContent)
	bAdmin("POST", "/admin/v2/namespaces/"+ns+"/replication", `["a","b"]`, http.StatusNoContent)
	for _, role := range []string{"repl", "replb"} {
		bAdmin("POST", "/admin/v2/namespaces/"+ns+"/permissions/"+role, `["produce"]`, http.StatusNoContent)
	}

	register := func(plugin, params string) {
		t.Helper()
		body := fmt.Sprintf(`{"serviceUrl":%q,"serviceUrlTls":%q,"brokerServiceUrl":%q,"brokerServiceUrlTls":%q,
			"brokerClientTlsEnabled":true,"brokerClientTrustCertsFilePath":%q,"authenticationPlugin":%q,"authenticationParameters":%q}`,
			sb.WebURL(), sb.WebTLSURL(), sb.BrokerURL(), sb.BrokerTLSURL(), p.CAFile, plugin, params)
		code, resp := httpDo(t, "PUT", a.webURL+"/admin/v2/clusters/b", body)
		if code == http.StatusConflict {
			code, resp = httpDo(t, "POST", a.webURL+"/admin/v2/clusters/b", body)
		}
		if code != http.StatusNoContent {
			t.Fatalf("register b on a: %d %s", code, resp)
		}
	}
	register("org.apache.pulsar.client.impl.auth.AuthenticationToken", "token:"+signToken(t, secret, "repl", time.Time{}))
	expectHTTP(t, "POST", a.webURL+"/admin/v2/tenants/public", `{"adminRoles":[],"allowedClusters":["a","b"]}`, http.StatusNoContent)
	expectHTTP(t, "PUT", a.webURL+"/admin/v2/namespaces/"+ns, "", http.StatusNoContent)
	expectHTTP(t, "POST", a.webURL+"/admin/v2/namespaces/"+ns+"/replication", `["a","b"]`, http.StatusNoContent)
	topic := "persistent://" + ns + "/tls"
	expectHTTP(t, "PUT", restTopic(a.webURL, topic)+"/partitions", "2", http.StatusNoContent)

	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	prod, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := map[string][]string{}
	send := func(prefix string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			k, v := fmt.Sprintf("k%d", i%4), fmt.Sprintf("%s-%d", prefix, i)
			sent[k] = append(sent[k], v)
			if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Key: k, Payload: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("token", 40)
	linked := func(what string) {
		t.Helper()
		adminEventually(t, what, func() bool {
			for i := 0; i < 2; i++ {
				st := replicationStats(t, a.webURL, fmt.Sprintf("%s-partition-%d", topic, i))["b"]
				if !st.Connected || st.ReplicationBacklog != 0 {
					return false
				}
			}
			return true
		})
	}
	linked("token link over TLS drained")

	// Basic auth from now on: the link reconnects with it.
	register("org.apache.pulsar.client.impl.auth.AuthenticationBasic", `{"userId":"replb","password":"s3cret"}`)
	send("basic", 40)
	linked("basic link over TLS drained")

	cb := clientWith(t, pulsar.ClientOptions{URL: sb.BrokerTLSURL(), TLSTrustCertsFilePath: p.CAFile,
		Authentication: pulsar.NewAuthenticationToken(adminTok)})
	defer cb.Close()
	cons, err := cb.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []geoReceived
	for len(got) < 80 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("received %d of 80 on b: %v", len(got), err)
		}
		if m.GetReplicatedFrom() != "a" {
			t.Fatalf("message %q not marked replicated from a", m.Payload())
		}
		got = append(got, geoReceived{key: m.Key(), value: string(m.Payload())})
		cons.Ack(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if m, err := cons.Receive(ctx); err == nil {
		t.Fatalf("extra message %q on b", m.Payload())
	}
	cancel()
	checkExactlyOnceInOrder(t, "b", got, sent)
	if m := metricsText(t, a.webURL); !strings.Contains(m, `pulsar_replication_connected_count{cluster="a",namespace="public/geo",remote_cluster="b",topic="`+topic+`-partition-0"} 1`) {
		t.Fatalf("connected metric:\n%s", grepLines(m, "replication_connected"))
	}
}
