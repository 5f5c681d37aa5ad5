package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tokens of `pulsar tokens create` (jjwt): header exactly {"alg":"HS256"}
// (no typ), payload {"sub":...} with exp in seconds when given. These are
// built byte by byte, not with golang-jwt, so the test does not share
// assumptions with the code under test.

func pulsarHS256(key []byte, payload string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + b64(mac.Sum(nil))
}

func pulsarSigned(t *testing.T, key crypto.Signer, alg, payload string) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64([]byte(`{"alg":"`+alg+`"}`)) + "." + b64([]byte(payload))
	digest := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	case *ecdsa.PrivateKey:
		// JWS ES256 signatures are r||s, 32 bytes each (RFC 7518 3.4).
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	}
	return signing + "." + b64(sig)
}

// The example token of Pulsar's documentation has exactly this shape.
func TestPulsarDocumentationTokenShape(t *testing.T) {
	h, c, err := Decode("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJKb2UifQ.ipevRNuRP6HflG8cFKnmUPtypruRC4fb1DWtoLL62SY")
	if err != nil || len(h) != 1 || h["alg"] != "HS256" || len(c) != 1 || c["sub"] != "Joe" {
		t.Fatalf("%v %v %v", h, c, err)
	}
	// And Create writes the same bytes for the header.
	tok := mustCreate(t, secret, Claims{Subject: "Joe"})
	if !strings.HasPrefix(tok, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJKb2UifQ.") {
		t.Fatalf("Create writes %s", tok)
	}
}

func TestPulsarTokensVerify(t *testing.T) {
	testKeys(t)
	exp := now.Add(time.Hour).Unix()
	payload := `{"sub":"pulsar-role","exp":` + strconv.FormatInt(exp, 10) + `}`

	// HS256 with the raw key file Pulsar's create-secret-key writes.
	key, err := LoadSecretKey(writeFile(t, secret))
	if err != nil {
		t.Fatal(err)
	}
	got, err := mustVerifier(t, Config{SecretKey: key}).Verify(pulsarHS256(secret, payload), now)
	if err != nil || got.Role != "pulsar-role" || got.ExpiresAt.Unix() != exp {
		t.Errorf("HS256: %+v %v", got, err)
	}

	// RS256 and ES256 with the DER public keys create-key-pair writes.
	for _, k := range []struct {
		priv crypto.Signer
		alg  string
	}{{rsaKey, RS256}, {ecKey, ES256}} {
		der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := LoadPublicKey(writeFile(t, der))
		if err != nil {
			t.Fatal(err)
		}
		got, err := mustVerifier(t, Config{PublicKey: pub}).Verify(pulsarSigned(t, k.priv, k.alg, `{"sub":"pulsar-role"}`), now)
		if err != nil || got.Role != "pulsar-role" || !got.ExpiresAt.IsZero() {
			t.Errorf("%s: %+v %v", k.alg, got, err)
		}
	}

	// And Pulsar's DER PKCS#8 private key signs our tokens.
	priv, err := LoadPrivateKey(writeFile(t, mustPKCS8(t, rsaKey)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustVerifier(t, Config{PublicKey: &rsaKey.PublicKey}).Verify(mustCreate(t, priv, Claims{Subject: "x"}), now); err != nil {
		t.Errorf("token from Pulsar's private key: %v", err)
	}
}

// Our tokens verify with a plain, standard use of golang-jwt.
func TestCreatedTokensVerifyWithPlainJWTLibrary(t *testing.T) {
	testKeys(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		key, verify any
		method      jwt.SigningMethod
	}{
		{secret, secret, jwt.SigningMethodHS256},
		{rsaKey, &rsaKey.PublicKey, jwt.SigningMethodRS256},
		{ecKey, &ecKey.PublicKey, jwt.SigningMethodES256},
	} {
		tok := mustCreate(t, tc.key, Claims{Subject: "alice", ExpiresAt: exp, Extra: map[string]any{"aud": "mb"}})
		var claims jwt.RegisteredClaims
		parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return tc.verify, nil },
			jwt.WithValidMethods([]string{tc.method.Alg()}), jwt.WithExpirationRequired(), jwt.WithAudience("mb"))
		if err != nil || !parsed.Valid {
			t.Errorf("%s: %v", tc.method.Alg(), err)
			continue
		}
		if claims.Subject != "alice" || !claims.ExpiresAt.Time.Equal(exp) {
			t.Errorf("%s: claims %+v", tc.method.Alg(), claims)
		}
	}
}
