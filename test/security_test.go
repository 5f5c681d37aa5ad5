package test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/golang-jwt/jwt/v5"
	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/messagebus/messagebus/server"
	"google.golang.org/protobuf/proto"
)

// authServer runs a broker with HS256 token auth and superuser "admin", and
// returns it, the secret key and the superuser's admin client.
func authServer(t *testing.T, extra func(*server.Options)) (*server.Server, []byte, pulsaradmin.Client) {
	t.Helper()
	path, key := secretKey(t)
	opts := server.Options{Security: server.Security{AuthTokenSecretKey: path, SuperuserRoles: []string{"admin"}}}
	if extra != nil {
		extra(&opts)
	}
	s := startServer(t, opts)
	return s, key, tokenAdmin(t, s.WebURL(), signToken(t, key, "admin", time.Time{}))
}

// setupTenant creates tenant with admin role tenantAdmin and namespaces, as
// the superuser.
func setupTenant(t *testing.T, admin pulsaradmin.Client, tenant, tenantAdmin string, namespaces ...string) {
	t.Helper()
	if err := admin.Tenants().Create(utils.TenantData{Name: tenant, AdminRoles: []string{tenantAdmin}, AllowedClusters: []string{"standalone"}}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		if err := admin.Namespaces().CreateNamespace(tenant + "/" + ns); err != nil {
			t.Fatal(err)
		}
	}
}

func grant(t *testing.T, admin pulsaradmin.Client, ns, role string, actions ...utils.AuthAction) {
	t.Helper()
	if err := admin.Namespaces().GrantNamespacePermission(nsName(t, ns), role, actions); err != nil {
		t.Fatal(err)
	}
}

// canProduce reports whether a producer can be created and send.
func canProduce(t *testing.T, c pulsar.Client, topic string) error {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("hello")})
	return err
}

func canConsume(t *testing.T, c pulsar.Client, topic, sub string) error {
	t.Helper()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub})
	if err != nil {
		return err
	}
	cons.Close()
	return nil
}

func expectRefused(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: allowed, want refused", what)
	}
}

func TestAuthProduceAndConsumeGrants(t *testing.T) {
	s, key, admin := authServer(t, nil)
	setupTenant(t, admin, "acme", "acme-admin", "app", "other")
	grant(t, admin, "acme/app", "writer", utils.AuthAction("produce"))
	grant(t, admin, "acme/app", "reader", utils.AuthAction("consume"))
	topic := "persistent://acme/app/orders"

	writer := tokenClient(t, s.BrokerURL(), signToken(t, key, "writer", time.Time{}))
	reader := tokenClient(t, s.BrokerURL(), signToken(t, key, "reader", time.Time{}))

	// The reader subscribes first so it sees what the writer sends.
	cons, err := reader.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatalf("consume-only role subscribing: %v", err)
	}
	defer cons.Close()
	if err := canProduce(t, writer, topic); err != nil {
		t.Fatalf("produce-only role producing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m, err := cons.Receive(ctx); err != nil || string(m.Payload()) != "hello" {
		t.Fatalf("reader received %v, %v", m, err)
	}

	expectRefused(t, canConsume(t, writer, topic, "w"), "produce-only role subscribing")
	expectRefused(t, canProduce(t, reader, topic), "consume-only role producing")
	// Grants are confined to their namespace.
	expectRefused(t, canProduce(t, writer, "persistent://acme/other/orders"), "writer producing in another namespace")
	expectRefused(t, canConsume(t, reader, "persistent://acme/other/orders", "s"), "reader consuming in another namespace")

	// Topic-level grants cover exactly that topic.
	if err := admin.Topics().GrantPermission(topicName(t, "persistent://acme/other/one"), "writer", []utils.AuthAction{utils.AuthAction("produce")}); err != nil {
		t.Fatal(err)
	}
	if err := canProduce(t, writer, "persistent://acme/other/one"); err != nil {
		t.Fatalf("topic grant: %v", err)
	}
	expectRefused(t, canProduce(t, writer, "persistent://acme/other/two"), "topic grant used on another topic")

	// The superuser and the tenant's admin may do both.
	for _, role := range []string{"admin", "acme-admin"} {
		c := tokenClient(t, s.BrokerURL(), signToken(t, key, role, time.Time{}))
		if err := canProduce(t, c, "persistent://acme/other/x"); err != nil {
			t.Fatalf("%s producing: %v", role, err)
		}
		if err := canConsume(t, c, "persistent://acme/other/x", "s"); err != nil {
			t.Fatalf("%s consuming: %v", role, err)
		}
	}
	// Another tenant's admin may not.
	setupTenant(t, admin, "globex", "globex-admin")
	globex := tokenClient(t, s.BrokerURL(), signToken(t, key, "globex-admin", time.Time{}))
	expectRefused(t, canProduce(t, globex, topic), "another tenant's admin producing")

	// No credentials and no anonymous role: refused at CONNECT.
	anon := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL()})
	expectRefused(t, canProduce(t, anon, topic), "client without credentials")
}

func TestAuthAnonymousRoleHasOnlyItsGrants(t *testing.T) {
	s, _, admin := authServer(t, func(o *server.Options) { o.AnonymousRole = "anon" })
	setupTenant(t, admin, "pub", "pub-admin", "open", "closed")
	grant(t, admin, "pub/open", "anon", utils.AuthAction("produce"))
	anon := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL()})
	if err := canProduce(t, anon, "persistent://pub/open/t"); err != nil {
		t.Fatalf("anonymous role with a grant: %v", err)
	}
	expectRefused(t, canProduce(t, anon, "persistent://pub/closed/t"), "anonymous role without a grant")
	expectRefused(t, canConsume(t, anon, "persistent://pub/open/t", "s"), "anonymous role consuming with a produce grant")
	// The admin API gives the anonymous role nothing more.
	expectHTTP(t, "GET", s.WebURL()+"/admin/v2/tenants", "", http.StatusForbidden)
}

// rawConnectWith sends CONNECT with the given credentials and returns the answer.
func rawConnectWith(t *testing.T, brokerURL, method string, data []byte, refresh bool) (*rawConn, *pb.BaseCommand) {
	t.Helper()
	c := dialRaw(t, brokerURL)
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw-test"), ProtocolVersion: proto.Int32(20),
		AuthMethodName: proto.String(method), AuthData: data,
		FeatureFlags: &pb.FeatureFlags{SupportsAuthRefresh: proto.Bool(refresh)},
	}})
	return c, c.read()
}

func TestAuthRejectsBadTokens(t *testing.T) {
	priv, err := token.GenerateKeyPair(token.RS256)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := token.MarshalPublicKey(priv.Public(), token.PEM)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(pubFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, server.Options{Security: server.Security{AuthTokenPublicKey: pubFile, SuperuserRoles: []string{"admin"}}})

	// Sanity: a good RS256 token connects.
	if _, cmd := rawConnectWith(t, s.BrokerURL(), "token", []byte(signToken(t, priv, "admin", time.Now().Add(time.Hour))), true); cmd.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("valid token: %v", cmd)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	b64 := base64.RawURLEncoding.EncodeToString
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin"})
	confused.Header = map[string]any{"alg": "HS256"}
	confusedTok, err := confused.SignedString(pubPEM) // the public key as an HMAC secret
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method string
		data         string
		reason       string
	}{
		{"expired", "token", signToken(t, priv, "admin", time.Now().Add(-time.Minute)), "expired"},
		{"signed by another key", "token", signToken(t, other, "admin", time.Time{}), "signature"},
		{"alg none", "token", b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + ".", "algorithm"},
		{"public key used as HS256 secret", "token", confusedTok, "algorithm"},
		{"garbage", "token", "not-a-token", "malformed"},
		{"no credentials", "", "", "credentials are required"},
		{"unknown method", "basic", "admin:admin", "not supported"},
		{"tls without a certificate", "tls", "", "not enabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cmd := rawConnectWith(t, s.BrokerURL(), tc.method, []byte(tc.data), true)
			if cmd.GetType() != pb.BaseCommand_ERROR || cmd.GetError().GetError() != pb.ServerError_AuthenticationError {
				t.Fatalf("got %v, want ERROR AuthenticationError", cmd)
			}
			msg := cmd.GetError().GetMessage()
			if !strings.Contains(msg, tc.reason) {
				t.Fatalf("message %q does not say %q", msg, tc.reason)
			}
			if len(tc.data) > 8 && strings.Contains(msg, tc.data) {
				t.Fatalf("error message echoes the credentials: %q", msg)
			}
			c.expectClosed()
		})
	}
	if got := metricValue(t, s.WebURL(), `pulsar_authentication_failures_total{auth_method="token"}`); got < 5 {
		t.Fatalf("token failures metric = %v, want >= 5", got)
	}
}

func TestAuthAdminAPI(t *testing.T) {
	s, key, admin := authServer(t, nil)
	setupTenant(t, admin, "acme", "acme-admin", "app")
	setupTenant(t, admin, "globex", "globex-admin", "app")
	grant(t, admin, "acme/app", "reader", utils.AuthAction("consume"))
	web := s.WebURL()

	// Unauthenticated and badly authenticated requests: 401 with a reason.
	expectHTTP(t, "GET", web+"/admin/v2/tenants", "", http.StatusUnauthorized)
	req, _ := http.NewRequest("GET", web+"/admin/v2/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+signToken(t, []byte("another secret key of 32 bytes!!"), "admin", time.Time{}))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token signed by another key: %v %v", resp, err)
	}
	// Health and metrics stay open for probes and scrapers.
	expectHTTP(t, "GET", web+"/healthz", "", http.StatusOK)
	expectHTTP(t, "GET", web+"/metrics", "", http.StatusOK)

	acme := tokenAdmin(t, web, signToken(t, key, "acme-admin", time.Time{}))
	if err := acme.Namespaces().CreateNamespace("acme/more"); err != nil {
		t.Fatalf("tenant admin creating a namespace in its tenant: %v", err)
	}
	if err := acme.Namespaces().SetNamespaceMessageTTL("acme/app", 60); err != nil {
		t.Fatalf("tenant admin setting a policy: %v", err)
	}
	if err := acme.Topics().Create(topicName(t, "persistent://acme/app/t"), 0); err != nil {
		t.Fatalf("tenant admin creating a topic: %v", err)
	}
	if _, err := acme.Namespaces().GetTopics("acme/app"); err != nil {
		t.Fatalf("tenant admin listing topics: %v", err)
	}
	expectStatus(t, acme.Namespaces().CreateNamespace("globex/more"), http.StatusForbidden, "tenant admin creating in another tenant")
	_, err := acme.Namespaces().GetPolicies("globex/app")
	expectStatus(t, err, http.StatusForbidden, "tenant admin reading another tenant's policies")
	_, err = acme.Tenants().List()
	expectStatus(t, err, http.StatusForbidden, "tenant admin listing tenants")
	expectStatus(t, acme.Tenants().Create(utils.TenantData{Name: "mine", AllowedClusters: []string{"standalone"}}), http.StatusForbidden, "tenant admin creating a tenant")
	expectStatus(t, acme.Topics().Delete(topicName(t, "persistent://globex/app/t"), true, false), http.StatusForbidden, "tenant admin deleting another tenant's topic")

	// A consume grant reads stats and manages subscriptions, nothing else.
	reader := tokenAdmin(t, web, signToken(t, key, "reader", time.Time{}))
	if _, err := reader.Topics().GetStats(topicName(t, "persistent://acme/app/t")); err != nil {
		t.Fatalf("reader topic stats: %v", err)
	}
	if err := reader.Subscriptions().Create(topicName(t, "persistent://acme/app/t"), "s", utils.Earliest); err != nil {
		t.Fatalf("reader creating a subscription: %v", err)
	}
	_, err = reader.Namespaces().GetPolicies("acme/app")
	expectStatus(t, err, http.StatusForbidden, "reader reading namespace policies")
	expectStatus(t, reader.Topics().Delete(topicName(t, "persistent://acme/app/t"), true, false), http.StatusForbidden, "reader deleting a topic")
	_, err = reader.Topics().GetStats(topicName(t, "persistent://globex/app/t"))
	expectStatus(t, err, http.StatusForbidden, "reader reading another tenant's stats")
}

func TestTLSAndClientCertificates(t *testing.T) {
	p := newPKI(t)
	srvCert, srvKey := p.issue(t, "broker", true)
	aliceCert, aliceKey := p.issue(t, "alice", false)
	bobCert, bobKey := p.issue(t, "bob", false)
	opsCert, opsKey := p.issue(t, "ops", false)
	s := startServer(t, server.Options{Security: server.Security{
		BrokerTLSAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		TLSCertFile: srvCert, TLSKeyFile: srvKey, TLSTrustCertsFile: p.CAFile,
		SuperuserRoles: []string{"ops"},
	}})
	if !strings.HasPrefix(s.BrokerTLSURL(), "pulsar+ssl://") || !strings.HasPrefix(s.WebTLSURL(), "https://") {
		t.Fatalf("TLS URLs %q %q", s.BrokerTLSURL(), s.WebTLSURL())
	}

	// The superuser sets up over HTTPS with its certificate.
	ops := p.httpsClient(t, opsCert, opsKey)
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/admin/v2/tenants/acme", `{"adminRoles":[],"allowedClusters":["standalone"]}`},
		{"PUT", "/admin/v2/namespaces/acme/app", ""},
		{"POST", "/admin/v2/namespaces/acme/app/permissions/alice", `["produce"]`},
	} {
		req, _ := http.NewRequest(step.method, s.WebTLSURL()+step.path, strings.NewReader(step.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := ops.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s as ops: %v %v", step.method, step.path, resp, err)
		}
		resp.Body.Close()
	}
	// Without a certificate, or with a role that has no rights: refused.
	if resp, err := p.httpsClient(t, "", "").Get(s.WebTLSURL() + "/admin/v2/tenants"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("HTTPS without a client certificate: %v %v", resp, err)
	}
	if resp, err := p.httpsClient(t, aliceCert, aliceKey).Get(s.WebTLSURL() + "/admin/v2/tenants"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("HTTPS as alice listing tenants: %v %v", resp, err)
	}

	topic := "persistent://acme/app/t"
	tlsClient := func(cert, key string) pulsar.Client {
		o := pulsar.ClientOptions{URL: s.BrokerTLSURL(), TLSTrustCertsFilePath: p.CAFile}
		if cert != "" {
			o.Authentication = pulsar.NewAuthenticationTLS(cert, key)
		}
		return clientWith(t, o)
	}
	if err := canProduce(t, tlsClient(aliceCert, aliceKey), topic); err != nil {
		t.Fatalf("alice (produce grant) over mTLS: %v", err)
	}
	expectRefused(t, canConsume(t, tlsClient(aliceCert, aliceKey), topic, "s"), "alice consuming")
	expectRefused(t, canProduce(t, tlsClient(bobCert, bobKey), topic), "bob (no grant) producing")
	expectRefused(t, canProduce(t, tlsClient("", ""), topic), "TLS client without a certificate")
	// A client that does not trust the broker's CA does not get in.
	untrusting := clientWith(t, pulsar.ClientOptions{URL: s.BrokerTLSURL(), Authentication: pulsar.NewAuthenticationTLS(opsCert, opsKey)})
	expectRefused(t, canProduce(t, untrusting, topic), "client not trusting the broker certificate")
	// The superuser's certificate works on the binary protocol too.
	if err := canConsume(t, tlsClient(opsCert, opsKey), topic, "s"); err != nil {
		t.Fatalf("ops consuming: %v", err)
	}
}

func TestAuthRefreshOnOpenConnection(t *testing.T) {
	s, key, _ := authServer(t, func(o *server.Options) { o.AuthRefreshTimeout = time.Second })

	// A client whose token supplier hands out fresh short-lived tokens stays
	// connected across expiries: the broker challenges, the client answers.
	fresh := func() (string, error) {
		return token.Create(key, token.Claims{Subject: "admin", ExpiresAt: time.Now().Add(2 * time.Second)})
	}
	c := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL(), Authentication: pulsar.NewAuthenticationTokenFromSupplier(fresh)})
	producer, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://public/default/refresh", SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	series := `pulsar_authentication_success_total{auth_method="token"}`
	first := metricValue(t, s.WebURL(), series)
	eventually(t, "two refreshes", func() bool { return metricValue(t, s.WebURL(), series) >= first+2 })
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("after refresh")}); err != nil {
		t.Fatalf("send after refreshes: %v", err)
	}
	if f := metricValue(t, s.WebURL(), `pulsar_authentication_failures_total{auth_method="token"}`); f > 0 {
		t.Fatalf("%v authentication failures during refresh", f)
	}

	// A client that answers the challenge with its expired token is cut off.
	exp := time.Now().Add(2 * time.Second)
	raw, cmd := rawConnectWith(t, s.BrokerURL(), "token", []byte(signToken(t, key, "admin", exp)), true)
	if cmd.GetType() != pb.BaseCommand_CONNECTED || !cmd.GetConnected().GetFeatureFlags().GetSupportsAuthRefresh() {
		t.Fatalf("connect: %v", cmd)
	}
	ch := raw.read()
	if ch.GetType() != pb.BaseCommand_AUTH_CHALLENGE || string(ch.GetAuthChallenge().GetChallenge().GetAuthData()) != "refresh" {
		t.Fatalf("want AUTH_CHALLENGE at expiry, got %v", ch)
	}
	if time.Now().Before(exp.Truncate(time.Second)) {
		t.Fatalf("challenged before the token expired")
	}
	raw.send(&pb.BaseCommand{Type: pb.BaseCommand_AUTH_RESPONSE.Enum(), AuthResponse: &pb.CommandAuthResponse{
		Response: &pb.AuthData{AuthMethodName: proto.String("token"), AuthData: []byte(signToken(t, key, "admin", exp))}}})
	expectAuthError(t, raw.expectClosed())

	// Fresh credentials for another role are refused too.
	raw, _ = rawConnectWith(t, s.BrokerURL(), "token", []byte(signToken(t, key, "admin", time.Now().Add(time.Second))), true)
	if ch := raw.read(); ch.GetType() != pb.BaseCommand_AUTH_CHALLENGE {
		t.Fatalf("want AUTH_CHALLENGE, got %v", ch)
	}
	raw.send(&pb.BaseCommand{Type: pb.BaseCommand_AUTH_RESPONSE.Enum(), AuthResponse: &pb.CommandAuthResponse{
		Response: &pb.AuthData{AuthMethodName: proto.String("token"), AuthData: []byte(signToken(t, key, "someone-else", time.Time{}))}}})
	expectAuthError(t, raw.expectClosed())

	// Silence after the challenge: disconnected after the refresh timeout.
	raw, _ = rawConnectWith(t, s.BrokerURL(), "token", []byte(signToken(t, key, "admin", time.Now().Add(time.Second))), true)
	if ch := raw.read(); ch.GetType() != pb.BaseCommand_AUTH_CHALLENGE {
		t.Fatalf("want AUTH_CHALLENGE, got %v", ch)
	}
	raw.expectClosed()

	// A client that cannot refresh is disconnected at expiry, unchallenged.
	raw, _ = rawConnectWith(t, s.BrokerURL(), "token", []byte(signToken(t, key, "admin", time.Now().Add(time.Second))), false)
	for _, cmd := range raw.expectClosed() {
		if cmd.GetType() == pb.BaseCommand_AUTH_CHALLENGE {
			t.Fatal("challenged a client without auth refresh support")
		}
	}
}

func expectAuthError(t *testing.T, cmds []*pb.BaseCommand) {
	t.Helper()
	for _, c := range cmds {
		if c.GetType() == pb.BaseCommand_ERROR && c.GetError().GetError() == pb.ServerError_AuthenticationError {
			return
		}
	}
	t.Fatalf("closed without an AuthenticationError: %v", fmt.Sprint(cmds))
}
