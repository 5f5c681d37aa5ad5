package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate whose common name is "alice", written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	srvDER, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliDER, cliKey := issue(3, "alice", x509.ExtKeyUsageClientAuth, nil)
	p := testPKI{
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		clientCert: write("client.pem", "CERTIFICATE", cliDER),
		clientKey:  write("client.key", "PRIVATE KEY", keyDER(cliKey)),
		pool:       x509.NewCertPool(),
		server:     tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
	p.pool.AddCert(ca)
	return p
}

// tlsAdmin is an HTTPS admin API that records the client certificate's
// common name and the Authorization header of each request.
func tlsAdmin(t *testing.T, p testPKI, clientAuth tls.ClientAuthType) (url string, seen func() []string) {
	var mu sync.Mutex
	var log []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		mu.Lock()
		log = append(log, "cn="+cn+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`["public"]`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: clientAuth, ClientCAs: p.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), log...)
	}
}

func TestAdminTLSTrustStoreClientCertAndToken(t *testing.T) {
	p := newTestPKI(t)
	url, seen := tlsAdmin(t, p, tls.RequireAndVerifyClientCert)
	out, err := runRoot(t, "admin", "--admin-url", url, "--tls-trust-certs-file", p.caFile,
		"--tls-cert-file", p.clientCert, "--tls-key-file", p.clientKey, "--auth-token", "tok", "tenants", "list")
	if err != nil || out != "public\n" {
		t.Fatalf("mTLS + token: %q %v", out, err)
	}
	// Certificate alone.
	if _, err := runRoot(t, "admin", "--admin-url", url, "--tls-trust-certs-file", p.caFile,
		"--tls-cert-file", p.clientCert, "--tls-key-file", p.clientKey, "tenants", "list"); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) != 2 || got[0] != "cn=alice auth=Bearer tok" || got[1] != "cn=alice auth=" {
		t.Fatalf("server saw %q", got)
	}
	// Without the client certificate the server refuses the handshake.
	if _, err := runRoot(t, "admin", "--admin-url", url, "--tls-trust-certs-file", p.caFile, "tenants", "list"); err == nil {
		t.Fatal("connected without the required client certificate")
	}
}

func TestAdminTLSVerifiesTheServer(t *testing.T) {
	p := newTestPKI(t)
	url, _ := tlsAdmin(t, p, tls.NoClientCert)
	_, err := runRoot(t, "admin", "--admin-url", url, "tenants", "list")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server accepted: %v", err)
	}
	if _, err := runRoot(t, "admin", "--admin-url", url, "--tls-allow-insecure", "tenants", "list"); err != nil {
		t.Fatalf("--tls-allow-insecure: %v", err)
	}
	if _, err := runRoot(t, "admin", "--admin-url", url, "--tls-trust-certs-file", p.caFile, "tenants", "list"); err != nil {
		t.Fatalf("trust store: %v", err)
	}
}

func TestAdminTLSFromEnvironment(t *testing.T) {
	p := newTestPKI(t)
	url, seen := tlsAdmin(t, p, tls.VerifyClientCertIfGiven)
	// The broker's MB_TLS_* variables are not the client's identity.
	t.Setenv("MB_TLS_CERT_FILE", p.clientCert)
	t.Setenv("MB_TLS_KEY_FILE", p.clientKey)
	t.Setenv("MB_CLIENT_TLS_TRUST_CERTS_FILE", p.caFile)
	if _, err := runRoot(t, "admin", "--admin-url", url, "tenants", "list"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MB_CLIENT_TLS_CERT_FILE", p.clientCert)
	t.Setenv("MB_CLIENT_TLS_KEY_FILE", p.clientKey)
	if _, err := runRoot(t, "admin", "--admin-url", url, "tenants", "list"); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) != 2 || got[0] != "cn= auth=" || got[1] != "cn=alice auth=" {
		t.Fatalf("server saw %q", got)
	}
	// Environment TLS settings do not get in the way of a plain URL.
	plain, _ := fakeAdmin(t)
	if _, err := runRoot(t, "admin", "--admin-url", plain, "tenants", "list"); err != nil {
		t.Fatalf("plain URL with MB_CLIENT_TLS_* set: %v", err)
	}
}

func TestAdminTLSRejectsBadOptions(t *testing.T) {
	p := newTestPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-url", "http://127.0.0.1:1", "--tls-trust-certs-file", p.caFile}, "needs a TLS --admin-url"},
		{[]string{"--admin-url", "https://127.0.0.1:1", "--tls-cert-file", p.clientCert}, "both --tls-cert-file and --tls-key-file"},
		{[]string{"--admin-url", "https://127.0.0.1:1", "--tls-trust-certs-file", garbage}, "no PEM certificates"},
		{[]string{"--admin-url", "https://127.0.0.1:1", "--tls-trust-certs-file", garbage + ".missing"}, "no such file"},
		{[]string{"--admin-url", "https://127.0.0.1:1", "--tls-cert-file", p.clientCert, "--tls-key-file", garbage}, "--tls-key-file"},
	} {
		_, err := runRoot(t, append(append([]string{"admin"}, tc.args...), "tenants", "list")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// parseClientFlags parses produce/consume connection flags as those
// commands do, and returns the Pulsar client options they make.
func parseClientFlags(t *testing.T, args ...string) (*clientOptions, error) {
	t.Helper()
	o := &clientOptions{}
	cmd := &cobra.Command{Use: "x"}
	o.register(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	_, err := o.pulsarOptions()
	return o, err
}

func authName(a any) string {
	if n, ok := a.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

func TestPulsarClientTLSOptions(t *testing.T) {
	p := newTestPKI(t)
	t.Setenv("MB_AUTH_TOKEN", "")
	url := "pulsar+ssl://127.0.0.1:6651"

	o, err := parseClientFlags(t, "-u", url, "--tls-trust-certs-file", p.caFile, "--tls-allow-insecure",
		"--tls-cert-file", p.clientCert, "--tls-key-file", p.clientKey, "--auth-token", "tok")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := o.pulsarOptions()
	if opts.TLSTrustCertsFilePath != p.caFile || !opts.TLSAllowInsecureConnection || authName(opts.Authentication) != "token" ||
		opts.TLSCertificateFile != p.clientCert || opts.TLSKeyFilePath != p.clientKey {
		t.Fatalf("token + mTLS: %+v auth %s", opts, authName(opts.Authentication))
	}

	// The certificate alone is the credential: Pulsar's "tls" auth method.
	o, err = parseClientFlags(t, "-u", url, "--tls-trust-certs-file", p.caFile, "--tls-cert-file", p.clientCert, "--tls-key-file", p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ = o.pulsarOptions()
	if authName(opts.Authentication) != "tls" || opts.TLSCertificateFile != "" || opts.TLSAllowInsecureConnection {
		t.Fatalf("mTLS: %+v auth %s", opts, authName(opts.Authentication))
	}

	// No TLS options, plain URL: nothing set.
	o, err = parseClientFlags(t, "-u", "pulsar://127.0.0.1:6650")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ = o.pulsarOptions()
	if opts.Authentication != nil || opts.TLSTrustCertsFilePath != "" || opts.TLSCertificateFile != "" {
		t.Fatalf("plain: %+v", opts)
	}

	// From the environment.
	t.Setenv("MB_CLIENT_TLS_TRUST_CERTS_FILE", p.caFile)
	t.Setenv("MB_CLIENT_TLS_ALLOW_INSECURE", "true")
	o, err = parseClientFlags(t, "-u", url)
	if err != nil {
		t.Fatal(err)
	}
	if opts, _ = o.pulsarOptions(); opts.TLSTrustCertsFilePath != p.caFile || !opts.TLSAllowInsecureConnection {
		t.Fatalf("env: %+v", opts)
	}
	if _, err := parseClientFlags(t, "-u", "pulsar://127.0.0.1:6650"); err != nil {
		t.Fatalf("env TLS settings with a plain URL: %v", err)
	}
}

func TestPulsarClientTLSRejectsBadOptions(t *testing.T) {
	p := newTestPKI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-u", "pulsar://127.0.0.1:6650", "--tls-cert-file", p.clientCert, "--tls-key-file", p.clientKey}, "needs a TLS --service-url"},
		{[]string{"-u", "pulsar+ssl://127.0.0.1:6651", "--tls-key-file", p.clientKey}, "both"},
		{[]string{"-u", "pulsar+ssl://127.0.0.1:6651", "--tls-trust-certs-file", p.clientKey}, "no PEM certificates"},
		{[]string{"-u", "pulsar+ssl://127.0.0.1:6651", "--tls-cert-file", p.caFile, "--tls-key-file", p.clientKey}, "--tls-cert-file"},
	} {
		if _, err := parseClientFlags(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	// And through the real command: the error comes before any connection.
	if _, err := runRoot(t, "produce", "t", "-m", "x", "-u", "pulsar://127.0.0.1:1", "--tls-allow-insecure"); err == nil ||
		!strings.Contains(err.Error(), "needs a TLS --service-url") {
		t.Fatalf("produce: %v", err)
	}
}
