package test

import (
	"crypto"
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
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/messagebus/messagebus/internal/auth/token"
)

// secretKey writes a fresh HS256 secret key file, as `pulsar tokens
// create-secret-key` does (raw bytes), and returns the path and the key.
func secretKey(t *testing.T) (string, []byte) {
	t.Helper()
	key, err := token.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// signToken makes a token for role signed with key; exp zero: no expiry.
func signToken(t *testing.T, key any, role string, exp time.Time) string {
	t.Helper()
	tok, err := token.Create(key, token.Claims{Subject: role, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenClient is a Go client authenticating with tok; a short operation
// timeout because refused connections are retried until it.
func tokenClient(t *testing.T, url, tok string) pulsar.Client {
	t.Helper()
	return clientWith(t, pulsar.ClientOptions{URL: url, Authentication: pulsar.NewAuthenticationToken(tok)})
}

// clientWith is a quiet client closed with the test; 3 s operation and
// connection timeouts unless opts says otherwise.
func clientWith(t *testing.T, opts pulsar.ClientOptions) pulsar.Client {
	t.Helper()
	if opts.OperationTimeout == 0 {
		opts.OperationTimeout = 3 * time.Second
	}
	if opts.ConnectionTimeout == 0 {
		opts.ConnectionTimeout = 3 * time.Second
	}
	opts.Logger = plog.NewLoggerWithSlog(quietLogger())
	c, err := pulsar.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// tokenAdmin is pulsaradmin authenticating with tok.
func tokenAdmin(t *testing.T, webURL, tok string) pulsaradmin.Client {
	t.Helper()
	c, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: webURL, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pki is a test certificate authority with PEM files on disk.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  crypto.Signer
	CAFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "messagebus test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), ca: ca, caKey: key}
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue writes a certificate for cn (server certificates are for 127.0.0.1
// and localhost) and its key, returning both paths.
func (p *pki) issue(t *testing.T, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, cn+".crt", "CERTIFICATE", der), p.write(t, cn+".key", "PRIVATE KEY", kder)
}

// httpsClient trusts the test CA and presents the given client certificate
// (none when certFile is empty).
func (p *pki) httpsClient(t *testing.T, certFile, keyFile string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	cfg := &tls.Config{RootCAs: pool}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}
