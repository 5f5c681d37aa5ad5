// Package oauthflow is the client side of `mb access login`: it gets an ID
// token for a person from an OpenID provider, either with the authorization
// code flow and PKCE on a loopback callback (RFC 8252) or with the device
// authorization grant (RFC 8628) on machines without a browser.
//
// It depends only on the provider's published metadata (discovery) and
// knows nothing of the broker or the control plane.
package oauthflow

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config says which provider and client to use.
type Config struct {
	// Issuer is the provider's issuer URL; endpoints come from its discovery document.
	Issuer string
	// ClientID is a public (secretless) client registered for loopback
	// redirects and the device grant.
	ClientID string
	// Scopes default to openid, email, groups.
	Scopes []string
	// HTTPClient talks to the provider; default http.DefaultClient.
	HTTPClient *http.Client
	// PollInterval is how often DeviceCode polls when the provider does not
	// say (RFC 8628 then prescribes 5s); whole seconds.
	PollInterval time.Duration
}

// Result is what a successful login yields.
type Result struct {
	// IDToken is verified: issuer, audience = client id, signature, expiry
	// and, for AuthCodePKCE, nonce.
	IDToken      string
	AccessToken  string
	RefreshToken string
	// Expiry is when the access token expires.
	Expiry time.Time
	// IDTokenExpiry is when the ID token expires.
	IDTokenExpiry time.Time
}

// ErrStateMismatch means the callback's state is not the one sent: the
// redirect did not come from this login (a forged or stale request).
var ErrStateMismatch = errors.New("login callback state does not match this login")

// ProviderError is an OAuth error the provider returned, e.g. access_denied
// when the user declines.
type ProviderError struct {
	Code        string
	Description string
}

func (e *ProviderError) Error() string {
	if e.Description == "" {
		return "identity provider refused the login: " + e.Code
	}
	return "identity provider refused the login: " + e.Code + ": " + e.Description
}

// AuthCodePKCE runs the authorization code flow with PKCE (S256): it
// listens on 127.0.0.1:<free port>, passes the authorization URL to open
// (which opens a browser or prints it), waits for the redirect to
// http://127.0.0.1:<port>/callback, exchanges the code and verifies the ID
// token. It returns when ctx ends, too.
func AuthCodePKCE(ctx context.Context, cfg Config, open func(authURL string) error) (Result, error) {
	cfg, ctx = cfg.withDefaults(ctx)
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return Result{}, fmt.Errorf("discover %s: %w", cfg.Issuer, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("listen for the login callback: %w", err)
	}
	oc := oauth2.Config{
		ClientID:    cfg.ClientID,
		Endpoint:    provider.Endpoint(),
		RedirectURL: fmt.Sprintf("http://%s/callback", ln.Addr()),
		Scopes:      cfg.Scopes,
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()

	codes := make(chan callback, 1)
	srv := &http.Server{
		Handler:           callbackHandler(state, cfg.Issuer, codes),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// Graceful, so the browser still gets the page the handler wrote.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	authURL := oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	if err := open(authURL); err != nil {
		return Result{}, fmt.Errorf("open the login page: %w", err)
	}
	var cb callback
	select {
	case <-ctx.Done():
		return Result{}, fmt.Errorf("waiting for the browser login: %w", context.Cause(ctx))
	case cb = <-codes:
	}
	if cb.err != nil {
		return Result{}, cb.err
	}
	tok, err := oc.Exchange(ctx, cb.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Result{}, fmt.Errorf("exchange the authorization code: %w", describe(err))
	}
	res, idTok, err := verify(ctx, provider, cfg, tok)
	if err != nil {
		return Result{}, err
	}
	if subtle.ConstantTimeCompare([]byte(idTok.Nonce), []byte(nonce)) != 1 {
		return Result{}, errors.New("ID token nonce does not match this login")
	}
	return res, nil
}

// DeviceCode runs the device authorization grant: show gets the
// verification URI (the complete one, carrying the code, when the provider
// offers it) and the user code to enter there; DeviceCode then polls until
// the user approves, declines, the code expires or ctx ends.
func DeviceCode(ctx context.Context, cfg Config, show func(verificationURI, userCode string) error) (Result, error) {
	cfg, ctx = cfg.withDefaults(ctx)
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return Result{}, fmt.Errorf("discover %s: %w", cfg.Issuer, err)
	}
	oc := oauth2.Config{ClientID: cfg.ClientID, Endpoint: provider.Endpoint(), Scopes: cfg.Scopes}
	if oc.Endpoint.DeviceAuthURL == "" {
		return Result{}, fmt.Errorf("%s does not offer the device authorization grant", cfg.Issuer)
	}
	da, err := oc.DeviceAuth(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("start device authorization: %w", describe(err))
	}
	if da.Interval == 0 && cfg.PollInterval > 0 {
		da.Interval = max(1, int64((cfg.PollInterval+time.Second-1)/time.Second))
	}
	uri := da.VerificationURIComplete
	if uri == "" {
		uri = da.VerificationURI
	}
	if err := show(uri, da.UserCode); err != nil {
		return Result{}, fmt.Errorf("show the device code: %w", err)
	}
	tok, err := oc.DeviceAccessToken(ctx, da)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("waiting for device approval: %w", context.Cause(ctx))
		}
		return Result{}, fmt.Errorf("waiting for device approval: %w", describe(err))
	}
	res, _, err := verify(ctx, provider, cfg, tok)
	return res, err
}

func (cfg Config) withDefaults(ctx context.Context) (Config, context.Context) {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "groups"}
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	return cfg, ctx
}

func verify(ctx context.Context, provider *oidc.Provider, cfg Config, tok *oauth2.Token) (Result, *oidc.IDToken, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Result{}, nil, errors.New("token response has no ID token (is the openid scope granted?)")
	}
	idTok, err := provider.VerifierContext(ctx, &oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Result{}, nil, fmt.Errorf("verify the ID token: %w", err)
	}
	return Result{
		IDToken:       raw,
		AccessToken:   tok.AccessToken,
		RefreshToken:  tok.RefreshToken,
		Expiry:        tok.Expiry,
		IDTokenExpiry: idTok.Expiry,
	}, idTok, nil
}

// describe turns a token endpoint error into a ProviderError, whose message
// has the OAuth error code but not the response body.
func describe(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		return &ProviderError{Code: re.ErrorCode, Description: re.ErrorDescription}
	}
	return err
}

type callback struct {
	code string
	err  error
}

// callbackHandler answers the browser's redirect and hands the first
// outcome to the waiting flow; later requests only get a page.
func callbackHandler(state, issuer string, out chan<- callback) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var cb callback
		switch {
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			cb.err = ErrStateMismatch
		case q.Get("error") != "":
			cb.err = &ProviderError{Code: q.Get("error"), Description: q.Get("error_description")}
		// RFC 9207: a provider that names itself must be ours (mix-up defence).
		case q.Has("iss") && q.Get("iss") != issuer:
			cb.err = fmt.Errorf("login callback from issuer %q, expected %q", q.Get("iss"), issuer)
		case q.Get("code") == "":
			cb.err = errors.New("login callback has no authorization code")
		default:
			cb.code = q.Get("code")
		}
		select {
		case out <- cb:
		default:
			page(w, http.StatusConflict, "This login has already completed; you can close this window.")
			return
		}
		if cb.err != nil {
			page(w, http.StatusBadRequest, "Login failed: "+cb.err.Error())
			return
		}
		page(w, http.StatusOK, "Login received; you can close this window and return to the terminal.")
	})
	return mux
}

func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>mb access login</title></head><body><p>%s</p></body></html>\n", html.EscapeString(msg))
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	return base64.RawURLEncoding.EncodeToString(b)
}
