package oidcprovider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func claims(t *testing.T, jwt string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func TestClientCredentialsTokens(t *testing.T) {
	p := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tok, err := p.ClientCredentialsToken(ctx, "workload-a", "secret-a", "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	h, c := claims(t, tok)
	if h["alg"] != "RS256" || c["iss"] != p.Issuer || c["sub"] != "workload-a" || c["aud"] != "messagebus" {
		t.Fatalf("unexpected token: header %v claims %v", h, c)
	}

	// A URI audience is used as the resource indicator as is.
	tok, err = p.ClientCredentialsToken(ctx, "workload-b", "secret-b", "https://bus.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, c := claims(t, tok); c["sub"] != "workload-b" || c["aud"] != "https://bus.example" {
		t.Fatalf("unexpected claims %v", c)
	}

	if _, err := p.ClientCredentialsToken(ctx, "workload-a", "wrong", "messagebus"); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: got %v, want invalid_client", err)
	}

	tok, err = p.ShortLivedToken(ctx, "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	if _, c := claims(t, tok); c["exp"].(float64)-c["iat"].(float64) != ShortLivedTTL.Seconds() {
		t.Fatalf("short-lived token lives %vs", c["exp"].(float64)-c["iat"].(float64))
	}
}

func TestSecondProviderHasOwnIssuerAndKey(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Issuer == b.Issuer {
		t.Fatalf("both providers at %s", a.Issuer)
	}
	ctx := context.Background()
	ta, err := a.ClientCredentialsToken(ctx, "workload-a", "secret-a", "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.ClientCredentialsToken(ctx, "workload-a", "secret-a", "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := claims(t, ta)
	hb, _ := claims(t, tb)
	if ha["kid"] == hb["kid"] {
		t.Fatalf("providers share signing key %v", ha["kid"])
	}
}

func TestUnknownAccountAndBadUserCode(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	if err := p.Login(ctx, p.Issuer+"/auth", "mallory"); err == nil || !strings.Contains(err.Error(), "unknown fixture account") {
		t.Fatalf("unknown account: got %v", err)
	}
	err := p.ApproveDevice(ctx, "BCDF-GHJK", "alice")
	if err == nil || !strings.Contains(err.Error(), "user_code") {
		t.Fatalf("bad user code: got %v, want the code to be refused", err)
	}
	t.Logf("refused: %v", err)
}
