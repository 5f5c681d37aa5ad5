package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Test keys are made once: RSA generation is slow.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	ecKey2   *ecdsa.PrivateKey
	secret   = bytes.Repeat([]byte{0xA5}, SecretKeyLength)
	secret2  = bytes.Repeat([]byte{0x5A}, SecretKeyLength)
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseSecretKeyForms(t *testing.T) {
	raw := []byte("\x00\x01binary\nkey\xff")
	b64 := base64.StdEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{string(raw), raw},
		{"data:;base64," + b64, raw},
		{"data:application/octet-stream;base64," + b64 + "\n", raw},
		{"data:;base64," + strings.TrimRight(b64, "="), raw}, // unpadded
		{"data:,plain", []byte("plain")},                     // no encoding: as is, like Pulsar
		{"raw key with newline\n", []byte("raw key with newline\n")},
	} {
		got, err := ParseSecretKey([]byte(tc.in))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("ParseSecretKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "data:;base64", "data:;base64,!!!not-base64!!!", "data:text/plain;charset=utf-8,x", "data:;base64,"} {
		_, err := ParseSecretKey([]byte(bad))
		if err == nil {
			t.Errorf("ParseSecretKey(%q) accepted", bad)
		} else if strings.Contains(bad, "not-base64") && strings.Contains(err.Error(), "not-base64") {
			t.Errorf("error echoes key material: %v", err)
		}
	}
}

func TestLoadSecretKeyLocations(t *testing.T) {
	p := writeFile(t, secret)
	for _, src := range []string{p, "file://" + p, "data:;base64," + base64.StdEncoding.EncodeToString(secret)} {
		got, err := LoadSecretKey(src)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("LoadSecretKey(%q) = %x, %v", src, got, err)
		}
	}
	if _, err := LoadSecretKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadSecretKey("file://otherhost/etc/key"); err == nil {
		t.Error("remote file URL accepted")
	}
	if _, err := LoadSecretKey(""); err == nil {
		t.Error("empty location accepted")
	}
}

func TestParsePublicKeyFormats(t *testing.T) {
	testKeys(t)
	pkix := func(k crypto.PublicKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	rsaDER := pkix(&rsaKey.PublicKey)
	for name, in := range map[string][]byte{
		"RSA DER (Pulsar)":   rsaDER,
		"RSA PEM":            pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER}),
		"RSA PKCS1 PEM":      pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}),
		"RSA PKCS1 DER":      x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey),
		"RSA data: URL":      []byte("data:;base64," + base64.StdEncoding.EncodeToString(rsaDER)),
		"RSA PEM after text": append([]byte("comment\n"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})...),
	} {
		k, err := ParsePublicKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !rsaKey.PublicKey.Equal(k) {
			t.Errorf("%s: wrong key", name)
		}
	}
	ecDER := pkix(&ecKey.PublicKey)
	for name, in := range map[string][]byte{
		"EC DER": ecDER,
		"EC PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}),
	} {
		k, err := ParsePublicKey(in)
		if err != nil || !ecKey.PublicKey.Equal(k) {
			t.Errorf("%s: %v", name, err)
		}
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for name, in := range map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("not a key"),
		"P-384":        pkix(&p384.PublicKey),
		"RSA 1024":     pkix(&small.PublicKey),
		"Ed25519":      pkix(edPub),
		"wrong PEM":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rsaDER}),
		"private key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, rsaKey)}),
		"bad data URL": []byte("data:;base64,@@@"),
	} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("%s accepted as a public key", name)
		}
	}
}

func mustPKCS8(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePrivateKeyFormats(t *testing.T) {
	testKeys(t)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes an EC PARAMETERS block first.
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
	for name, tc := range map[string]struct {
		in   []byte
		want crypto.PublicKey
	}{
		"RSA PKCS8 DER (Pulsar)": {mustPKCS8(t, rsaKey), &rsaKey.PublicKey},
		"RSA PKCS8 PEM":          {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, rsaKey)}), &rsaKey.PublicKey},
		"RSA PKCS1 PEM":          {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), &rsaKey.PublicKey},
		"RSA PKCS1 DER":          {x509.MarshalPKCS1PrivateKey(rsaKey), &rsaKey.PublicKey},
		"EC PKCS8 DER (Pulsar)":  {mustPKCS8(t, ecKey), &ecKey.PublicKey},
		"EC SEC1 DER":            {sec1, &ecKey.PublicKey},
		"EC SEC1 PEM + params":   {append(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), &ecKey.PublicKey},
		"data: URL":              {[]byte("data:;base64," + base64.StdEncoding.EncodeToString(mustPKCS8(t, ecKey))), &ecKey.PublicKey},
	} {
		k, err := ParsePrivateKey(tc.in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if pub := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !pub.Equal(tc.want) {
			t.Errorf("%s: wrong key", name)
		}
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, in := range map[string][]byte{
		"garbage":    []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"Ed25519":    mustPKCS8(t, edPriv),
		"public key": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKCS8(t, rsaKey)}),
		"encrypted":  pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}),
		"legacy encrypted": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}}),
	} {
		if _, err := ParsePrivateKey(in); err == nil {
			t.Errorf("%s accepted as a private key", name)
		}
	}
}

func TestLoadKeyErrorsDoNotShowInlineKeys(t *testing.T) {
	inline := "data:;base64,U0VDUkVUU0VDUkVUU0VDUkVU" // decodes, but is no key
	for _, load := range []func(string) error{
		func(s string) error { _, err := LoadPublicKey(s); return err },
		func(s string) error { _, err := LoadPrivateKey(s); return err },
	} {
		err := load(inline)
		if err == nil || strings.Contains(err.Error(), "U0VDUkVU") {
			t.Errorf("error %v", err)
		}
	}
}

func TestGenerateAndMarshalRoundTrip(t *testing.T) {
	for _, alg := range []string{RS256, ES256} {
		priv, err := GenerateKeyPair(alg)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []Format{PEM, DER} {
			pb, err := MarshalPrivateKey(priv, f)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.HasPrefix(pb, []byte("-----BEGIN PRIVATE KEY-----")); got != (f == PEM) {
				t.Errorf("%s format %d: PEM header %v", alg, f, got)
			}
			back, err := LoadPrivateKey(writeFile(t, pb))
			if err != nil {
				t.Fatalf("%s format %d: %v", alg, f, err)
			}
			if a, _ := SigningAlgorithm(back); a != alg {
				t.Errorf("reloaded key makes %s, want %s", a, alg)
			}
			ub, err := MarshalPublicKey(priv.Public(), f)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := LoadPublicKey("file://" + writeFile(t, ub))
			if err != nil {
				t.Fatal(err)
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(priv.Public()) {
				t.Errorf("%s format %d: public key changed", alg, f)
			}
		}
	}
	if _, err := GenerateKeyPair("HS512"); err == nil {
		t.Error("HS512 key pair accepted")
	}
	s, err := GenerateSecretKey()
	if err != nil || len(s) != SecretKeyLength || bytes.Equal(s, make([]byte, SecretKeyLength)) {
		t.Fatalf("secret %x %v", s, err)
	}
}
