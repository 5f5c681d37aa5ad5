package token

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustCreate(t testing.TB, key any, c Claims) string {
	t.Helper()
	tok, err := Create(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// hs256 builds a token by hand: header and payload JSON exactly as given.
func hs256(key []byte, header, payload string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64([]byte(header)) + "." + b64([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + b64(mac.Sum(nil))
}

type verifierCase struct {
	name   string
	signer any // Create's key
	cfg    Config
	alg    string
}

func verifierCases(t *testing.T) []verifierCase {
	testKeys(t)
	return []verifierCase{
		{"HS256", secret, Config{SecretKey: secret}, HS256},
		{"RS256", rsaKey, Config{PublicKey: &rsaKey.PublicKey}, RS256},
		{"ES256", ecKey, Config{PublicKey: &ecKey.PublicKey}, ES256},
	}
}

func TestRoundTripAllAlgorithms(t *testing.T) {
	for _, tc := range verifierCases(t) {
		v := mustVerifier(t, tc.cfg)
		if v.Algorithm() != tc.alg {
			t.Errorf("%s: verifier algorithm %s", tc.name, v.Algorithm())
		}
		// No exp: never expires.
		got, err := v.Verify(mustCreate(t, tc.signer, Claims{Subject: "alice"}), now.AddDate(50, 0, 0))
		if err != nil || got.Role != "alice" || !got.ExpiresAt.IsZero() {
			t.Errorf("%s no exp: %+v %v", tc.name, got, err)
		}
		exp := now.Add(time.Hour)
		tok := mustCreate(t, tc.signer, Claims{Subject: "bob", ExpiresAt: exp.Add(300 * time.Millisecond), KeyID: "k1"})
		got, err = v.Verify(tok, now)
		if err != nil || got.Role != "bob" || !got.ExpiresAt.Equal(exp) {
			t.Errorf("%s exp (whole seconds): %+v %v", tc.name, got, err)
		}
		h, _, err := Decode(tok)
		if err != nil || h["alg"] != tc.alg || h["kid"] != "k1" || len(h) != 2 {
			t.Errorf("%s header %v %v", tc.name, h, err)
		}
	}
}

func TestRejectsAlgNone(t *testing.T) {
	for _, tc := range verifierCases(t) {
		v := mustVerifier(t, tc.cfg)
		b64 := base64.RawURLEncoding.EncodeToString
		for _, tok := range []string{
			b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + ".",
			b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + "." + b64([]byte("x")),
			b64([]byte(`{"alg":"NONE"}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + ".",
			b64([]byte(`{}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + ".",
		} {
			if _, err := v.Verify(tok, now); !errors.Is(err, ErrAlgorithm) {
				t.Errorf("%s: alg none/missing: %v", tc.name, err)
			}
		}
	}
}

func TestAlgorithmMustMatchKeyType(t *testing.T) {
	cases := verifierCases(t)
	for _, signer := range cases {
		tok := mustCreate(t, signer.signer, Claims{Subject: "alice"})
		for _, verifier := range cases {
			if signer.alg == verifier.alg {
				continue
			}
			_, err := mustVerifier(t, verifier.cfg).Verify(tok, now)
			if !errors.Is(err, ErrAlgorithm) {
				t.Errorf("%s token against %s key: %v", signer.alg, verifier.alg, err)
			}
		}
	}
	// RS256 key pair, ES256 token signed with an RSA key cannot exist; but a
	// PS256 or RS512 token signed with the right RSA key must still fail.
	testKeys(t)
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodRS512, jwt.SigningMethodPS256} {
		tok, err := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "alice"}).SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mustVerifier(t, Config{PublicKey: &rsaKey.PublicKey}).Verify(tok, now); !errors.Is(err, ErrAlgorithm) {
			t.Errorf("%s with the right RSA key: %v", m.Alg(), err)
		}
	}
	tok := hs256(secret, `{"alg":"HS512"}`, `{"sub":"alice"}`)
	if _, err := mustVerifier(t, Config{SecretKey: secret}).Verify(tok, now); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("HS512 header: %v", err)
	}
}

// The classic key confusion: an attacker who knows the public key signs an
// HS256 token with the public key's bytes as the HMAC secret.
func TestRejectsKeyConfusion(t *testing.T) {
	testKeys(t)
	for _, pub := range []crypto.PublicKey{&rsaKey.PublicKey, &ecKey.PublicKey} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		v := mustVerifier(t, Config{PublicKey: pub})
		for _, hmacKey := range [][]byte{der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})} {
			tok := hs256(hmacKey, `{"alg":"HS256"}`, `{"sub":"superuser"}`)
			if _, err := v.Verify(tok, now); !errors.Is(err, ErrAlgorithm) {
				t.Errorf("%s verifier, HS256 over public key bytes: %v", v.Algorithm(), err)
			}
		}
	}
}

func TestExpiryAndNotBefore(t *testing.T) {
	v := mustVerifier(t, Config{SecretKey: secret})
	expired := mustCreate(t, secret, Claims{Subject: "a", ExpiresAt: now.Add(-time.Second)})
	_, err := v.Verify(expired, now)
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "2026-03-01T11:59:59Z") {
		t.Errorf("expired: %v", err)
	}
	// Exactly at exp is expired (RFC 7519: on or after).
	atExp := mustCreate(t, secret, Claims{Subject: "a", ExpiresAt: now})
	if _, err := v.Verify(atExp, now); !errors.Is(err, ErrExpired) {
		t.Errorf("at exp: %v", err)
	}
	lenient := mustVerifier(t, Config{SecretKey: secret, Leeway: 5 * time.Second})
	if _, err := lenient.Verify(expired, now); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	if _, err := lenient.Verify(expired, now.Add(10*time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("beyond leeway: %v", err)
	}

	future := mustCreate(t, secret, Claims{Subject: "a", Extra: map[string]any{"nbf": now.Add(time.Minute).Unix()}})
	if _, err := v.Verify(future, now); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("nbf in the future: %v", err)
	}
	if _, err := v.Verify(future, now.Add(time.Minute)); err != nil {
		t.Errorf("nbf reached: %v", err)
	}
	// An expired token signed by another key is a signature failure: the
	// signature is checked before any claim.
	other := mustCreate(t, secret2, Claims{Subject: "a", ExpiresAt: now.Add(-time.Hour)})
	if _, err := v.Verify(other, now); !errors.Is(err, ErrSignature) {
		t.Errorf("expired and foreign: %v", err)
	}
	// Wrongly typed time claims are malformed, not "no expiry".
	for _, payload := range []string{`{"sub":"a","exp":"tomorrow"}`, `{"sub":"a","exp":null}`, `{"sub":"a","nbf":[1]}`} {
		if _, err := v.Verify(hs256(secret, `{"alg":"HS256"}`, payload), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", payload, err)
		}
	}
}

func TestRejectsOtherKeys(t *testing.T) {
	testKeys(t)
	for _, tc := range []struct {
		signer any
		cfg    Config
	}{
		{secret2, Config{SecretKey: secret}},
		{rsaKey2, Config{PublicKey: &rsaKey.PublicKey}},
		{ecKey2, Config{PublicKey: &ecKey.PublicKey}},
	} {
		tok := mustCreate(t, tc.signer, Claims{Subject: "alice"})
		if _, err := mustVerifier(t, tc.cfg).Verify(tok, now); !errors.Is(err, ErrSignature) {
			t.Errorf("foreign key: %v", err)
		}
	}
	// A valid token with its payload swapped keeps a signature that no longer matches.
	tok := mustCreate(t, secret, Claims{Subject: "alice"})
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`))
	if _, err := mustVerifier(t, Config{SecretKey: secret}).Verify(strings.Join(parts, "."), now); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered payload: %v", err)
	}
}

func TestRejectsGarbage(t *testing.T) {
	v := mustVerifier(t, Config{SecretKey: secret})
	good := mustCreate(t, secret, Claims{Subject: "alice"})
	for _, tok := range []string{
		"",
		"garbage",
		"a.b",
		"a.b.c.d",
		"....",
		"!!!.!!!.!!!",
		good + "x",
		strings.Replace(good, ".", "..", 1),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"`)) + ".e30.",
		"e30." + base64.RawURLEncoding.EncodeToString([]byte(`[1,2]`)) + ".",
		" " + good,
	} {
		_, err := v.Verify(tok, now)
		if err == nil {
			t.Errorf("%q accepted", tok)
			continue
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrAlgorithm) {
			t.Errorf("%q: unclassified error %v", tok, err)
		}
	}
}

func TestRoleClaim(t *testing.T) {
	v := mustVerifier(t, Config{SecretKey: secret})
	for payload, wantErr := range map[string]bool{
		`{"sub":"alice"}`:             false,
		`{}`:                          true,
		`{"sub":""}`:                  true,
		`{"sub":"   "}`:               true,
		`{"sub":null}`:                true,
		`{"sub":42}`:                  true,
		`{"sub":["alice"]}`:           true,
		`{"sub":{"role":"alice"}}`:    true,
		`{"role":"alice"}`:            true,
		`{"sub":"alice","aud":"any"}`: false, // no audience configured
	} {
		got, err := v.Verify(hs256(secret, `{"alg":"HS256"}`, payload), now)
		if wantErr != (err != nil) {
			t.Errorf("%s: %+v %v", payload, got, err)
		}
		if err != nil && !errors.Is(err, ErrNoRole) {
			t.Errorf("%s: %v is not ErrNoRole", payload, err)
		}
	}
	custom := mustVerifier(t, Config{SecretKey: secret, RoleClaim: "role"})
	got, err := custom.Verify(hs256(secret, `{"alg":"HS256"}`, `{"sub":"ignored","role":"ops"}`), now)
	if err != nil || got.Role != "ops" {
		t.Errorf("custom role claim: %+v %v", got, err)
	}
	if _, err := custom.Verify(mustCreate(t, secret, Claims{Subject: "alice"}), now); !errors.Is(err, ErrNoRole) {
		t.Errorf("custom role claim missing: %v", err)
	}
}

func TestAudience(t *testing.T) {
	v := mustVerifier(t, Config{SecretKey: secret, Audience: "messagebus"})
	for payload, want := range map[string]error{
		`{"sub":"a","aud":"messagebus"}`:             nil,
		`{"sub":"a","aud":["other","messagebus"]}`:   nil,
		`{"sub":"a","aud":"other"}`:                  ErrAudience,
		`{"sub":"a"}`:                                ErrAudience,
		`{"sub":"a","aud":""}`:                       ErrAudience,
		`{"sub":"a","aud":["other"]}`:                ErrAudience,
		`{"sub":"a","aud":["messagebus-not-quite"]}`: ErrAudience,
		`{"sub":"a","aud":42}`:                       ErrAudience, // golang-jwt: not a string, so absent
		`{"sub":"a","aud":["messagebus",1]}`:         ErrMalformed,
	} {
		_, err := v.Verify(hs256(secret, `{"alg":"HS256"}`, payload), now)
		if (want == nil) != (err == nil) || want != nil && !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", payload, err, want)
		}
	}
}

func TestRejectsHugeTokens(t *testing.T) {
	v := mustVerifier(t, Config{SecretKey: secret})
	// Validly signed, so only the length can refuse it.
	huge := mustCreate(t, secret, Claims{Subject: "a", Extra: map[string]any{"pad": strings.Repeat("x", MaxTokenLength)}})
	_, err := v.Verify(huge, now)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("huge token: %v", err)
	}
	if _, _, err := Decode(huge); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge token decoded: %v", err)
	}
	// Just under the cap is fine.
	fits := mustCreate(t, secret, Claims{Subject: "a", Extra: map[string]any{"pad": strings.Repeat("x", MaxTokenLength/2)}})
	if _, err := v.Verify(fits, now); err != nil {
		t.Errorf("%d-byte token: %v", len(fits), err)
	}
}

func TestErrorsNeverContainTheToken(t *testing.T) {
	testKeys(t)
	v := mustVerifier(t, Config{PublicKey: &rsaKey.PublicKey})
	b64 := base64.RawURLEncoding.EncodeToString
	for _, tok := range []string{
		mustCreate(t, rsaKey2, Claims{Subject: "secret-role-name"}),
		mustCreate(t, rsaKey, Claims{Subject: "secret-role-name", ExpiresAt: now.Add(-time.Hour)}),
		mustCreate(t, secret, Claims{Subject: "secret-role-name"}),
		b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`{"sub":"secret-role-name" oops}`)) + ".c2ln",
		b64([]byte(`{"alg":"secret-role-name"}`)) + "." + b64([]byte(`{}`)) + ".",
		"secret-role-name",
	} {
		_, err := v.Verify(tok, now)
		if err == nil {
			t.Fatalf("accepted %q", tok)
		}
		msg := err.Error()
		if strings.Contains(msg, "secret-role-name") || strings.Contains(msg, tok) || strings.Contains(msg, strings.Split(tok, ".")[0]) {
			t.Errorf("error shows token content: %v", err)
		}
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	testKeys(t)
	for name, cfg := range map[string]Config{
		"no key":         {},
		"both keys":      {SecretKey: secret, PublicKey: &rsaKey.PublicKey},
		"short secret":   {SecretKey: secret[:31]},
		"empty secret":   {SecretKey: []byte{}},
		"private key":    {PublicKey: rsaKey},
		"negative skew":  {SecretKey: secret, Leeway: -time.Second},
		"unsupported ty": {PublicKey: "a string"},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestVerifierKeepsItsOwnCopyOfTheSecret(t *testing.T) {
	key := append([]byte(nil), secret...)
	v := mustVerifier(t, Config{SecretKey: key})
	key[0] ^= 0xFF
	if _, err := v.Verify(mustCreate(t, secret, Claims{Subject: "a"}), now); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRejects(t *testing.T) {
	testKeys(t)
	for name, tc := range map[string]struct {
		key any
		c   Claims
	}{
		"no subject":       {secret, Claims{}},
		"short secret":     {secret[:16], Claims{Subject: "a"}},
		"public key":       {&rsaKey.PublicKey, Claims{Subject: "a"}},
		"string key":       {"secret", Claims{Subject: "a"}},
		"extra sub":        {secret, Claims{Subject: "a", Extra: map[string]any{"sub": "b"}}},
		"extra exp":        {secret, Claims{Subject: "a", Extra: map[string]any{"exp": 1}}},
		"header alg":       {secret, Claims{Subject: "a", Header: map[string]any{"alg": "none"}}},
		"kid disagreement": {secret, Claims{Subject: "a", KeyID: "x", Header: map[string]any{"kid": "y"}}},
	} {
		if _, err := Create(tc.key, tc.c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := mustCreate(t, secret, Claims{Subject: "alice", ExpiresAt: time.Unix(1900000000, 0), Header: map[string]any{"x": "y"}})
	h, c, err := Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "HS256" || h["x"] != "y" || c["sub"] != "alice" || c["exp"] != json.Number("1900000000") {
		t.Fatalf("header %v claims %v", h, c)
	}
	// Decode shows what Verify refuses, like alg none.
	b64 := base64.RawURLEncoding.EncodeToString
	h, c, err = Decode(b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"sub":"root"}`)) + ".")
	if err != nil || h["alg"] != "none" || c["sub"] != "root" {
		t.Fatalf("alg none: %v %v %v", h, c, err)
	}
	for _, bad := range []string{"", "x", "a.b.c", "e30.e30"} {
		if _, _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q): %v", bad, err)
		}
	}
}
