package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to verifiers of all three algorithms:
// nothing may panic, every refusal is one of the package's errors, an
// accepted token has a role and was signed for that verifier's algorithm,
// and no error message repeats the input.
func FuzzVerify(f *testing.F) {
	testKeys(f)
	b64 := base64.RawURLEncoding.EncodeToString
	for _, seed := range []string{
		"",
		"a.b.c",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJKb2UifQ.ipevRNuRP6HflG8cFKnmUPtypruRC4fb1DWtoLL62SY",
		b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"sub":"admin"}`)) + ".",
		hs256(secret, `{"alg":"HS256"}`, `{"sub":42}`),
		hs256(secret, `{"alg":"HS256"}`, `{"sub":"a","exp":"x","nbf":1e400,"aud":[1]}`),
	} {
		f.Add(seed)
	}
	for _, key := range []any{secret, rsaKey, ecKey, secret2} {
		f.Add(mustCreate(f, key, Claims{Subject: "alice"}))
		f.Add(mustCreate(f, key, Claims{Subject: "bob", ExpiresAt: now.Add(time.Hour), KeyID: "k"}))
	}
	verifiers := []*Verifier{}
	for _, cfg := range []Config{
		{SecretKey: secret},
		{PublicKey: &rsaKey.PublicKey},
		{PublicKey: &ecKey.PublicKey, Audience: "mb", Leeway: time.Minute},
	} {
		v, err := NewVerifier(cfg)
		if err != nil {
			f.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	sentinels := []error{ErrMalformed, ErrAlgorithm, ErrSignature, ErrExpired, ErrNotYetValid, ErrAudience, ErrNoRole}
	f.Fuzz(func(t *testing.T, tok string) {
		Decode(tok) // must not panic
		for _, v := range verifiers {
			got, err := v.Verify(tok, now)
			if err == nil {
				h, _, derr := Decode(tok)
				if got.Role == "" || derr != nil || h["alg"] != v.Algorithm() {
					t.Fatalf("%s accepted: %+v, header %v %v", v.Algorithm(), got, h, derr)
				}
				continue
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("unclassified error: %v", err)
			}
			if len(tok) >= 24 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error repeats the token: %v", err)
			}
		}
	})
}
