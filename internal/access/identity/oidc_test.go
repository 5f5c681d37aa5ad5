package identity_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/access/oauthflow"
	"github.com/messagebus/messagebus/internal/testutil/oidcprovider"
)

func oidcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks the error kind and that the message never quotes the token.
func wantErr(t *testing.T, err, kind error, token string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	t.Logf("refused: %v", err)
	if token != "" && strings.Contains(err.Error(), token) {
		t.Fatalf("error message contains the token: %v", err)
	}
}

func workloadToken(t *testing.T, p *oidcprovider.Provider, audience string) string {
	t.Helper()
	tok, err := p.ClientCredentialsToken(oidcContext(t), "workload-a", "secret-a", audience)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOIDCVerifyWorkloadToken(t *testing.T) {
	p := oidcprovider.Start(t)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"mb-cli", "messagebus"}})
	ctx := oidcContext(t)

	id, err := v.Verify(ctx, workloadToken(t, p, "messagebus"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != identity.KindOIDC || id.Issuer != p.Issuer || id.Subject != "workload-a" {
		t.Fatalf("identity %+v", id)
	}
	if id.Key() != "oidc:"+p.Issuer+"#workload-a" {
		t.Fatalf("key %q", id.Key())
	}
	if until := time.Until(id.ExpiresAt); until < 9*time.Minute || until > 11*time.Minute {
		t.Fatalf("expires in %v, want about 10m", until)
	}

	// Another workload of the same issuer is another subject.
	tokB, err := p.ClientCredentialsToken(ctx, "workload-b", "secret-b", "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(ctx, tokB); err != nil || id.Subject != "workload-b" {
		t.Fatalf("workload-b: %+v, %v", id, err)
	}
}

func TestOIDCVerifyWrongAudience(t *testing.T) {
	p := oidcprovider.Start(t)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"}})
	tok := workloadToken(t, p, "some-other-service")
	_, err := v.Verify(oidcContext(t), tok)
	wantErr(t, err, identity.ErrAudience, tok)
	if !strings.Contains(err.Error(), "some-other-service") {
		t.Fatalf("error does not name the token's audience: %v", err)
	}
}

func TestOIDCVerifyUntrustedIssuer(t *testing.T) {
	trusted, other := oidcprovider.Start(t), oidcprovider.Start(t)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{trusted.Issuer}, Audiences: []string{"messagebus"}})
	if !v.Trusted(trusted.Issuer) || v.Trusted(other.Issuer) || v.Trusted(trusted.Issuer+"/") {
		t.Fatal("Trusted answers wrongly")
	}
	tok := workloadToken(t, other, "messagebus")
	_, err := v.Verify(oidcContext(t), tok)
	wantErr(t, err, identity.ErrUntrustedIssuer, tok)
	if !strings.Contains(err.Error(), other.Issuer) {
		t.Fatalf("error does not name the issuer: %v", err)
	}
}

func TestOIDCVerifyExpiry(t *testing.T) {
	p := oidcprovider.Start(t)
	tok, err := p.ShortLivedToken(oidcContext(t), "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	// The verifier's clock, not the test, moves past the expiry.
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{
		Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"},
		ClockSkew: 30 * time.Second,
		Now:       func() time.Time { return *now.Load() },
	})
	id, err := v.Verify(oidcContext(t), tok)
	if err != nil {
		t.Fatal(err)
	}

	withinSkew := id.ExpiresAt.Add(20 * time.Second)
	now.Store(&withinSkew)
	if _, err := v.Verify(oidcContext(t), tok); err != nil {
		t.Fatalf("expired 20s ago with 30s skew: %v", err)
	}

	pastSkew := id.ExpiresAt.Add(31 * time.Second)
	now.Store(&pastSkew)
	_, err = v.Verify(oidcContext(t), tok)
	wantErr(t, err, identity.ErrExpired, tok)
}

func TestOIDCVerifyMalformedAndForged(t *testing.T) {
	p := oidcprovider.Start(t)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"}})
	ctx := oidcContext(t)
	genuine := workloadToken(t, p, "messagebus")
	parts := strings.Split(genuine, ".")
	var header map[string]any
	mustJSON(t, parts[0], &header)
	claims := map[string]any{"iss": p.Issuer, "sub": "workload-a", "aud": "messagebus", "exp": time.Now().Add(time.Hour).Unix()}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"empty":           "",
		"garbage":         "not-a-token",
		"garbage parts":   "a.b.c",
		"no issuer":       jwt(t, map[string]any{"alg": "RS256"}, map[string]any{"sub": "x"}, nil),
		"alg none":        jwt(t, map[string]any{"alg": "none", "typ": "JWT"}, claims, nil),
		"alg none kid":    jwt(t, map[string]any{"alg": "none", "kid": header["kid"]}, claims, nil),
		"HS256":           jwt(t, map[string]any{"alg": "HS256", "kid": header["kid"]}, claims, nil),
		"forged key":      jwt(t, map[string]any{"alg": "RS256", "kid": header["kid"]}, claims, key),
		"tampered claims": parts[0] + "." + b64(t, map[string]any{"iss": p.Issuer, "sub": "workload-b", "aud": "messagebus", "exp": time.Now().Add(time.Hour).Unix()}) + "." + parts[2],
		"bad signature":   parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("signature")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, tok)
			wantErr(t, err, identity.ErrInvalid, tok)
		})
	}
	// The genuine token still verifies: the key set survived the forgeries.
	if _, err := v.Verify(ctx, genuine); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCVerifyHumanIDToken(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := oidcContext(t)
	res, err := oauthflow.AuthCodePKCE(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(u string) error {
		go func() {
			if err := p.Login(ctx, u, "alice"); err != nil {
				t.Errorf("browser: %v", err)
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"mb-cli"}})
	id, err := v.Verify(ctx, res.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || id.Email != "alice@example.com" || !slices.Equal(id.Groups, []string{"new_team_eng"}) {
		t.Fatalf("identity %+v", id)
	}

	// A workload verifier does not accept a human's ID token.
	wv := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"}})
	_, err = wv.Verify(ctx, res.IDToken)
	wantErr(t, err, identity.ErrAudience, res.IDToken)

	// Groups come from the configured claim only.
	rv := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"mb-cli"}, GroupsClaim: "roles"})
	if id, err := rv.Verify(ctx, res.IDToken); err != nil || id.Groups != nil {
		t.Fatalf("groups claim \"roles\": %+v, %v", id, err)
	}
}

// failingTransport refuses the first n requests, as if the provider were
// not up yet.
type failingTransport struct {
	n     atomic.Int32
	calls atomic.Int32
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.calls.Add(1) <= f.n.Load() {
		return nil, errors.New("connection refused (test)")
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestOIDCDiscoveryRetriedAfterFailure(t *testing.T) {
	p := oidcprovider.Start(t)
	tr := &failingTransport{}
	tr.n.Store(1)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{
		Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"},
		HTTPClient: &http.Client{Transport: tr},
	})
	if tr.calls.Load() != 0 {
		t.Fatal("NewOIDCVerifier did I/O")
	}
	tok := workloadToken(t, p, "messagebus")
	ctx := oidcContext(t)

	_, err := v.Verify(ctx, tok)
	wantErr(t, err, identity.ErrIssuerUnavailable, tok)
	wantErr(t, err, identity.ErrInvalid, tok)

	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after the provider came up: %v", err)
	}
	// Discovery and keys are cached: more tokens cost no more requests.
	calls := tr.calls.Load()
	if _, err := v.Verify(ctx, workloadToken(t, p, "messagebus")); err != nil {
		t.Fatal(err)
	}
	if tr.calls.Load() != calls {
		t.Fatalf("verification made %d more requests", tr.calls.Load()-calls)
	}
}

func TestOIDCVerifyConcurrent(t *testing.T) {
	p := oidcprovider.Start(t)
	v := identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: []string{p.Issuer}, Audiences: []string{"messagebus"}})
	tok := workloadToken(t, p, "messagebus")
	ctx := oidcContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// jwt builds a compact JWS; with a nil key the signature is empty.
func jwt(t *testing.T, header, claims map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	signing := b64(t, header) + "." + b64(t, claims)
	if key == nil {
		return signing + "."
	}
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustJSON(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
