package oauthflow_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/access/oauthflow"
	"github.com/messagebus/messagebus/internal/testutil/oidcprovider"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// idClaims decodes an already verified ID token's claims.
func idClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// browser returns an open func that logs in as user in the background, the
// way the CLI hands the URL to a real browser; the login's own error comes
// back on the channel.
func browser(ctx context.Context, p *oidcprovider.Provider, user string) (func(string) error, <-chan error) {
	done := make(chan error, 1)
	return func(authURL string) error {
		go func() { done <- p.Login(ctx, authURL, user) }()
		return nil
	}, done
}

func TestAuthCodePKCE(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		user, email, group string
	}{
		{"alice", "alice@example.com", "new_team_eng"},
		{"bob", "bob@example.com", "other_team"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			open, loginErr := browser(ctx, p, tc.user)
			var authURL string
			res, err := oauthflow.AuthCodePKCE(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(u string) error {
				authURL = u
				return open(u)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-loginErr; err != nil {
				t.Fatalf("browser: %v", err)
			}

			q := mustQuery(t, authURL)
			if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
				t.Fatalf("authorization URL lacks PKCE/state/nonce: %v", q)
			}
			if !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") || !strings.HasSuffix(q.Get("redirect_uri"), "/callback") {
				t.Fatalf("redirect_uri %q", q.Get("redirect_uri"))
			}

			c := idClaims(t, res.IDToken)
			if c["iss"] != p.Issuer || c["sub"] != tc.user || c["aud"] != "mb-cli" || c["email"] != tc.email {
				t.Fatalf("ID token claims %v", c)
			}
			if g, _ := c["groups"].([]any); !slices.Contains(g, any(tc.group)) {
				t.Fatalf("ID token groups %v, want %s", c["groups"], tc.group)
			}
			if res.AccessToken == "" || res.RefreshToken == "" {
				t.Fatalf("missing access or refresh token")
			}
			if !res.IDTokenExpiry.After(time.Now()) || !res.Expiry.After(time.Now()) {
				t.Fatalf("expiry in the past: id %v access %v", res.IDTokenExpiry, res.Expiry)
			}
		})
	}
}

func TestAuthCodePKCEUserDeclines(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := testContext(t)
	denied := make(chan error, 1)
	_, err := oauthflow.AuthCodePKCE(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(u string) error {
		go func() { denied <- p.Deny(ctx, u) }()
		return nil
	})
	var pe *oauthflow.ProviderError
	if !errors.As(err, &pe) || pe.Code != "access_denied" {
		t.Fatalf("got %v, want ProviderError access_denied", err)
	}
	if err := <-denied; err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func TestAuthCodePKCEStateMismatch(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := testContext(t)
	page := make(chan int, 1)
	_, err := oauthflow.AuthCodePKCE(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(u string) error {
		// A forged redirect: right callback, someone else's state and code.
		cb := mustQuery(t, u).Get("redirect_uri") + "?code=stolen&state=other"
		go func() {
			resp, err := http.Get(cb)
			if err != nil {
				page <- 0
				return
			}
			resp.Body.Close()
			page <- resp.StatusCode
		}()
		return nil
	})
	if !errors.Is(err, oauthflow.ErrStateMismatch) {
		t.Fatalf("got %v, want ErrStateMismatch", err)
	}
	if got := <-page; got != http.StatusBadRequest {
		t.Fatalf("callback page answered %d, want 400", got)
	}
}

func TestAuthCodePKCEContextCancel(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx, cancel := context.WithCancel(testContext(t))
	opened := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := oauthflow.AuthCodePKCE(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(string) error {
			close(opened) // nobody logs in
			return nil
		})
		errc <- err
	}()
	<-opened
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AuthCodePKCE still waiting after cancel")
	}
}

func TestAuthCodePKCEOpenFails(t *testing.T) {
	p := oidcprovider.Start(t)
	boom := errors.New("no browser")
	_, err := oauthflow.AuthCodePKCE(testContext(t), oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli"}, func(string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the open error", err)
	}
}

func TestDeviceCode(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := testContext(t)
	approved := make(chan error, 1)
	res, err := oauthflow.DeviceCode(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli", PollInterval: time.Second},
		func(uri, code string) error {
			if !strings.HasPrefix(uri, p.Issuer+"/device") || code == "" {
				t.Errorf("verification URI %q, user code %q", uri, code)
			}
			go func() { approved <- p.ApproveDevice(ctx, code, "alice") }()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatalf("browser: %v", err)
	}
	c := idClaims(t, res.IDToken)
	if c["sub"] != "alice" || c["aud"] != "mb-cli" || c["email"] != "alice@example.com" {
		t.Fatalf("ID token claims %v", c)
	}
	if g, _ := c["groups"].([]any); !slices.Contains(g, any("new_team_eng")) {
		t.Fatalf("ID token groups %v", c["groups"])
	}
}

func TestDeviceCodeContextCancel(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx, cancel := context.WithCancel(testContext(t))
	_, err := oauthflow.DeviceCode(ctx, oauthflow.Config{Issuer: p.Issuer, ClientID: "mb-cli", PollInterval: time.Second},
		func(string, string) error {
			cancel() // nobody approves
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestUnreachableIssuer(t *testing.T) {
	_, err := oauthflow.DeviceCode(testContext(t), oauthflow.Config{Issuer: "http://127.0.0.1:1", ClientID: "mb-cli"},
		func(string, string) error { t.Error("show called"); return nil })
	if err == nil || !strings.Contains(err.Error(), "discover http://127.0.0.1:1") {
		t.Fatalf("got %v, want a discovery error", err)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
