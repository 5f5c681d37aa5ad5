package test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/messagebus/messagebus/server"
)

// startFails runs `mb standalone` with args and returns its stderr once it
// has exited, failing the test if it exits 0 or keeps running.
func startFails(t *testing.T, args ...string) string {
	t.Helper()
	p := launchProc(t, t.TempDir(), freePort(t), freePort(t), args)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("mb standalone %v kept running, want a startup failure", args)
	}
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("mb standalone %v exited 0, want a startup failure", args)
	}
	return p.stderr.String()
}

// accessTLSSetup is a CA, a server certificate and a token key with a
// superuser token.
func accessTLSSetup(t *testing.T) (p *pki, cert, key, secret, admin string) {
	t.Helper()
	p = newPKI(t)
	cert, key = p.issue(t, "broker", true)
	secret = filepath.Join(t.TempDir(), "secret.key")
	runCLI(t, "", "tokens", "create-secret-key", "--output", secret).ok(t)
	admin = strings.TrimSpace(runCLI(t, "", "tokens", "create", "--secret-key", secret, "--subject", "admin").ok(t))
	return p, cert, key, secret, admin
}

// With a certificate and no TLS listener of its own, the control plane
// still takes credentials over TLS only: gRPC uses the certificate, the
// JSON mapping is refused on the plain HTTP port (and the refusal audited).
func TestAccessRequireTLSWithCertificateOnly(t *testing.T) {
	p, cert, key, secret, admin := accessTLSSetup(t)
	grpcPort := freePort(t)
	proc := startProc(t, t.TempDir(), 0, 0, "--auth-token-secret-key", secret, "--superuser-roles", "admin",
		"--tls-cert-file", cert, "--tls-key-file", key, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort))
	grpcs := fmt.Sprintf("grpcs://127.0.0.1:%d", grpcPort)
	who := runCLI(t, "", "access", "--access-url", grpcs, "--tls-trust-certs-file", p.CAFile, "--auth-token", admin, "whoami").ok(t)
	if !strings.Contains(who, "admin") {
		t.Fatalf("whoami over grpcs: %q", who)
	}
	// Plaintext gRPC gets no answer, and the error says what to do.
	runCLI(t, "", "access", "--access-url", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--auth-token", admin, "--timeout", "10s", "whoami").
		fails(t, "grpcs://")
	for _, m := range []struct{ method, body string }{
		{"WhoAmI", `{}`},
		{"GetCredentials", `{"tenant":"public","role":"app","oidcToken":"a.b.c"}`},
	} {
		code, out := postAccess(t, http.DefaultClient, proc.webURL, m.method, admin, m.body)
		if code != http.StatusForbidden || out["code"] != "PermissionDenied" || !strings.Contains(fmt.Sprint(out["reason"]), "--access-require-tls") {
			t.Fatalf("%s over plain HTTP: %d %v", m.method, code, out)
		}
	}
	var audit struct {
		Records []auditRecord `json:"records"`
	}
	runCLI(t, "", "access", "--access-url", grpcs, "--tls-trust-certs-file", p.CAFile, "--auth-token", admin, "audit", "-o", "json").jsonOf(t, &audit)
	reasons := map[string]string{}
	for _, r := range audit.Records {
		if r.Reason == "plaintext" && r.Source == "127.0.0.1" {
			reasons[r.Action] = r.Reason
		}
	}
	if reasons["whoami-refused"] == "" || reasons["credentials-refused"] == "" {
		t.Fatalf("plaintext refusals not audited: %+v", audit.Records)
	}
	if v := metricValue(t, proc.webURL, `mb_access_refusals_total{reason="plaintext"}`); v != 2 {
		t.Fatalf(`mb_access_refusals_total{reason="plaintext"} = %v, want 2`, v)
	}
}

// --access-require-tls=false allows the JSON mapping on plain HTTP; gRPC
// keeps the certificate. With --https-addr the mapping works over HTTPS.
func TestAccessRequireTLSOffAndHTTPS(t *testing.T) {
	p, cert, key, secret, admin := accessTLSSetup(t)
	grpcPort, httpsPort := freePort(t), freePort(t)
	proc := startProc(t, t.TempDir(), 0, 0, "--auth-token-secret-key", secret, "--superuser-roles", "admin",
		"--tls-cert-file", cert, "--tls-key-file", key, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort), "--access-require-tls=false")
	if code, out := postAccess(t, http.DefaultClient, proc.webURL, "WhoAmI", admin, `{}`); code != 200 || out["role"] != "admin" {
		t.Fatalf("WhoAmI over plain HTTP with --access-require-tls=false: %d %v", code, out)
	}
	https := fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
	if code, out := postAccess(t, p.httpsClient(t, "", ""), https, "WhoAmI", admin, `{}`); code != 200 || out["role"] != "admin" {
		t.Fatalf("WhoAmI over HTTPS: %d %v", code, out)
	}
	runCLI(t, "", "access", "--access-url", fmt.Sprintf("grpcs://127.0.0.1:%d", grpcPort), "--tls-trust-certs-file", p.CAFile,
		"--auth-token", admin, "whoami").ok(t)
	runCLI(t, "", "access", "--access-url", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--auth-token", admin, "--timeout", "10s", "whoami").
		fails(t, "grpcs://")

	// Default (on, a certificate is configured): HTTPS works, plain HTTP does not.
	grpcPort, httpsPort = freePort(t), freePort(t)
	proc = startProc(t, t.TempDir(), 0, 0, "--auth-token-secret-key", secret, "--superuser-roles", "admin",
		"--tls-cert-file", cert, "--tls-key-file", key, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort))
	https = fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
	if code, out := postAccess(t, p.httpsClient(t, "", ""), https, "WhoAmI", admin, `{}`); code != 200 || out["role"] != "admin" {
		t.Fatalf("WhoAmI over HTTPS: %d %v", code, out)
	}
	if code, _ := postAccess(t, http.DefaultClient, proc.webURL, "WhoAmI", admin, `{}`); code != http.StatusForbidden {
		t.Fatalf("WhoAmI over plain HTTP: %d, want 403", code)
	}
}

// Startup fails, with a message saying what to set, rather than serving
// credentials in plaintext against the operator's wish.
func TestAccessRequireTLSStartupFailures(t *testing.T) {
	_, cert, key, secret, _ := accessTLSSetup(t)
	grpc := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	const noCert = "TLS is required (--access-require-tls) but the server has no certificate"
	if out := startFails(t, "--auth-token-secret-key", secret, "--grpc-addr", grpc(), "--access-require-tls"); !strings.Contains(out, noCert) {
		t.Fatalf("--access-require-tls without a certificate: %s", out)
	}
	t.Setenv("MB_ACCESS_REQUIRE_TLS", "true")
	if out := startFails(t, "--auth-token-secret-key", secret, "--grpc-addr", grpc()); !strings.Contains(out, noCert) {
		t.Fatalf("MB_ACCESS_REQUIRE_TLS=true without a certificate: %s", out)
	}
	t.Setenv("MB_ACCESS_REQUIRE_TLS", "")
	const halfPair = "TLS needs both a certificate and its key (--tls-cert-file and --tls-key-file)"
	if out := startFails(t, "--auth-token-secret-key", secret, "--grpc-addr", grpc(), "--tls-cert-file", cert); !strings.Contains(out, halfPair) {
		t.Fatalf("certificate without key: %s", out)
	}
	if out := startFails(t, "--auth-token-secret-key", secret, "--grpc-addr", grpc(), "--tls-key-file", key); !strings.Contains(out, halfPair) {
		t.Fatalf("key without certificate: %s", out)
	}
}

// --refuse-plaintext-credentials: the plaintext listeners refuse tokens
// (the broker at CONNECT, the admin API before reading anything) and still
// serve clients without credentials; the TLS listeners take them.
func TestRefusePlaintextCredentials(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "broker", true)
	secretFile, secret := secretKey(t)
	admin := signToken(t, secret, "admin", time.Now().Add(time.Hour))
	s := startServer(t, server.Options{Security: server.Security{
		AuthTokenSecretKey: secretFile, SuperuserRoles: []string{"admin"}, AnonymousRole: "anon",
		BrokerTLSAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key,
		RefusePlaintextCredentials: true,
	}})

	// Broker: a token over pulsar:// is refused with a message naming the
	// flag (the client retries until its timeout and logs the broker's
	// reason).
	clientLog := &syncBuffer{}
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), Authentication: pulsar.NewAuthenticationToken(admin),
		OperationTimeout: 3 * time.Second, ConnectionTimeout: 3 * time.Second,
		Logger: plog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(clientLog, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err = c.CreateProducer(pulsar.ProducerOptions{Topic: uniqueTopic(t)}); err == nil {
		t.Fatal("producer with a token over plaintext was created")
	}
	if !strings.Contains(clientLog.String(), "credentials are refused over plaintext on this server (--refuse-plaintext-credentials)") {
		t.Fatalf("the client did not get the refusal's reason; its log:\n%s", clientLog)
	}
	if v := metricValue(t, s.WebURL(), `pulsar_authentication_failures_total{auth_method="token"}`); v < 1 {
		t.Fatalf("pulsar_authentication_failures_total{auth_method=token} = %v", v)
	}
	// Over pulsar+ssl:// the same token works.
	tlsc := clientWith(t, pulsar.ClientOptions{URL: s.BrokerTLSURL(), TLSTrustCertsFilePath: p.CAFile, Authentication: pulsar.NewAuthenticationToken(admin)})
	if err := canProduce(t, tlsc, uniqueTopic(t)); err != nil {
		t.Fatalf("token over TLS: %v", err)
	}
	// Without credentials the plaintext port still answers (the anonymous
	// role has no grant, so the producer is refused by authorization, not
	// by the plaintext rule).
	anon := clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL()})
	_, err = anon.CreateProducer(pulsar.ProducerOptions{Topic: uniqueTopic(t)})
	if err == nil || strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("anonymous producer over plaintext: %v, want an authorization refusal", err)
	}

	// Admin API: a bearer token over plain HTTP gets 401 whatever the path;
	// without one the public paths answer; over HTTPS the token works.
	for _, path := range []string{"/admin/v2/tenants", "/metrics", "/admin/v2/brokers/health"} {
		req, _ := http.NewRequest("GET", s.WebURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "--refuse-plaintext-credentials") {
			t.Fatalf("GET %s with a token over plain HTTP: %d %s", path, resp.StatusCode, body)
		}
	}
	if resp, err := http.Get(s.WebURL() + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics without credentials over plain HTTP: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", s.WebTLSURL()+"/admin/v2/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := p.httpsClient(t, "", "").Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/v2/tenants with a token over HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()
}

// The flag never downgrades: without a certificate or a TLS listener to
// send clients to, startup fails.
func TestRefusePlaintextCredentialsNeedsTLS(t *testing.T) {
	_, cert, key, secret, _ := accessTLSSetup(t)
	out := startFails(t, "--auth-token-secret-key", secret, "--refuse-plaintext-credentials")
	if !strings.Contains(out, "needs a certificate") {
		t.Fatalf("without a certificate: %s", out)
	}
	out = startFails(t, "--auth-token-secret-key", secret, "--refuse-plaintext-credentials", "--tls-cert-file", cert, "--tls-key-file", key)
	if !strings.Contains(out, "--broker-tls-addr and --https-addr") {
		t.Fatalf("without TLS listeners: %s", out)
	}
}
