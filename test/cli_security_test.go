package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIStandaloneWithTLSAndTokens runs the binary with the security flags
// and the client commands against it, as an operator would.
func TestCLIStandaloneWithTLSAndTokens(t *testing.T) {
	p := newPKI(t)
	srvCert, srvKey := p.issue(t, "broker", true)
	opsCert, opsKey := p.issue(t, "ops", false)
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	runCLI(t, "", "tokens", "create-secret-key", "--output", keyFile).ok(t)
	adminTok := strings.TrimSpace(runCLI(t, "", "tokens", "create", "--secret-key", keyFile, "--subject", "admin").ok(t))
	otherKey := filepath.Join(t.TempDir(), "other.key")
	runCLI(t, "", "tokens", "create-secret-key", "--output", otherKey).ok(t)
	forged := strings.TrimSpace(runCLI(t, "", "tokens", "create", "--secret-key", otherKey, "--subject", "admin").ok(t))

	tlsPort, httpsPort, grpcPort := freePort(t), freePort(t), freePort(t)
	proc := startProc(t, t.TempDir(), 0, 0,
		"--auth-token-secret-key", keyFile, "--superuser-roles", "admin,ops",
		"--broker-tls-addr", fmt.Sprintf("127.0.0.1:%d", tlsPort), "--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort),
		"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-trust-certs-file", p.CAFile,
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort))
	https := fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
	ssl := fmt.Sprintf("pulsar+ssl://127.0.0.1:%d", tlsPort)

	// Admin over HTTPS with a client certificate whose common name is a superuser.
	out := runCLI(t, "", "admin", "--admin-url", https, "--tls-trust-certs-file", p.CAFile,
		"--tls-cert-file", opsCert, "--tls-key-file", opsKey, "tenants", "list").ok(t)
	if !strings.Contains(out, "public") {
		t.Fatalf("tenants over HTTPS: %q", out)
	}
	// Over plain HTTP: a token works, no credentials or a forged token do not.
	runCLI(t, "", "admin", "--admin-url", proc.webURL, "--auth-token", adminTok, "tenants", "list").ok(t)
	runCLI(t, "", "admin", "--admin-url", proc.webURL, "tenants", "list").fails(t, "credentials are required")
	runCLI(t, "", "admin", "--admin-url", proc.webURL, "--auth-token", forged, "tenants", "list").fails(t, "signature")

	// Produce and consume over pulsar+ssl with a token.
	topic := uniqueTopic(t)
	runCLI(t, "", "produce", "-u", ssl, "--tls-trust-certs-file", p.CAFile, "--auth-token", adminTok, topic, "-m", "over tls").ok(t)
	got := runCLI(t, "", "consume", "-u", ssl, "--tls-trust-certs-file", p.CAFile, "--auth-token", adminTok,
		topic, "-s", "s", "-n", "1", "--position", "earliest").ok(t)
	if !strings.Contains(got, "over tls") {
		t.Fatalf("consumed %q", got)
	}
	// The access control plane serves TLS too, since the server has a certificate.
	grpcs := fmt.Sprintf("grpcs://127.0.0.1:%d", grpcPort)
	who := runCLI(t, "", "access", "--access-url", grpcs, "--tls-trust-certs-file", p.CAFile, "--auth-token", adminTok, "whoami").ok(t)
	if !strings.Contains(who, "admin") || !strings.Contains(who, "true") {
		t.Fatalf("whoami over TLS: %q", who)
	}
	runCLI(t, "", "access", "--access-url", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--auth-token", adminTok, "--timeout", "3s", "whoami").fails(t, "")

	r := runCLI(t, "", "produce", "-u", ssl, "--tls-trust-certs-file", p.CAFile, "--auth-token", forged, "--timeout", "3s", topic, "-m", "x")
	if r.code == 0 {
		t.Fatal("produce with a forged token succeeded")
	}
}
