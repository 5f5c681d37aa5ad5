package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// ErrIssuerUnavailable marks a failed discovery of a trusted issuer: the
// token may be fine, the identity provider did not answer. Such errors also
// match ErrInvalid; callers that want to report "try again" check this first.
var ErrIssuerUnavailable = errors.New("identity provider unavailable")

// OIDCConfig configures an OIDCVerifier.
type OIDCConfig struct {
	// Issuers are the trusted issuer URLs, exactly as they appear in "iss".
	Issuers []string
	// Audiences are the accepted audiences; a token must carry any of them
	// (e.g. "messagebus" for workloads, "mb-cli" for human ID tokens).
	Audiences []string
	// GroupsClaim names the claim holding group names; default "groups".
	GroupsClaim string
	// ClockSkew is tolerated on expiry; default 1m.
	ClockSkew time.Duration
	// HTTPClient fetches discovery documents and keys; default http.DefaultClient.
	HTTPClient *http.Client
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// OIDCVerifier verifies OIDC JWTs (ID tokens and JWT access tokens) of
// trusted issuers. It is safe for concurrent use.
type OIDCVerifier struct {
	cfg     OIDCConfig
	issuers map[string]*issuer
}

// issuer discovers lazily and retries after failures, because the identity
// provider may start after the broker; success is cached for good (the key
// set refreshes itself when it meets an unknown key id).
type issuer struct {
	url      string
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// signingAlgs are the algorithms accepted: asymmetric only, so a key set can
// never be misused as an HMAC secret, and never "none".
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// NewOIDCVerifier returns a verifier for cfg. It does no I/O: each issuer is
// discovered on its first use.
func NewOIDCVerifier(cfg OIDCConfig) *OIDCVerifier {
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuers = slices.Clone(cfg.Issuers)
	cfg.Audiences = slices.Clone(cfg.Audiences)
	v := &OIDCVerifier{cfg: cfg, issuers: make(map[string]*issuer, len(cfg.Issuers))}
	for _, u := range cfg.Issuers {
		v.issuers[u] = &issuer{url: u}
	}
	return v
}

// Trusted reports whether tokens of issuer are accepted.
func (v *OIDCVerifier) Trusted(issuer string) bool {
	_, ok := v.issuers[issuer]
	return ok
}

// Verify verifies raw (signature by the issuer's published keys, issuer,
// audience, expiry) and returns the identity it proves. Errors match
// ErrUntrustedIssuer, ErrExpired, ErrAudience, ErrSignature or ErrInvalid; they never
// contain the token.
func (v *OIDCVerifier) Verify(ctx context.Context, raw string) (Identity, error) {
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	is, ok := v.issuers[iss]
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q", ErrUntrustedIssuer, clipClaim(iss))
	}
	verifier, err := is.get(ctx, v)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w: discover %s: %v", ErrInvalid, ErrIssuerUnavailable, iss, err)
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return Identity{}, fmt.Errorf("%w: token of %s expired at %s", ErrExpired, iss, expired.Expiry.UTC().Format(time.RFC3339))
		}
		// go-oidc's errors are not typed; its messages are matched so that
		// a forged token and an unreachable key set are told apart.
		switch msg := err.Error(); {
		case strings.Contains(msg, "fetching keys"):
			return Identity{}, fmt.Errorf("%w: %w: token of %s: %v", ErrInvalid, ErrIssuerUnavailable, iss, err)
		case strings.Contains(msg, "failed to verify id token signature"):
			return Identity{}, fmt.Errorf("%w: token of %s: signed by none of the issuer's published keys", ErrSignature, iss)
		}
		return Identity{}, fmt.Errorf("%w: token of %s: %v", ErrInvalid, iss, err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }) {
		return Identity{}, fmt.Errorf("%w: token of %s is for %q, accepted are %q", ErrAudience, iss, clipClaims(tok.Audience), v.cfg.Audiences)
	}
	if tok.Subject == "" {
		return Identity{}, fmt.Errorf("%w: token of %s has no subject", ErrInvalid, iss)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: token of %s: claims: %v", ErrInvalid, iss, err)
	}
	id := Identity{Kind: KindOIDC, Issuer: iss, Subject: tok.Subject, ExpiresAt: tok.Expiry}
	if raw, ok := claims["email"]; ok {
		// A non-string email is ignored rather than failing the token.
		_ = json.Unmarshal(raw, &id.Email)
	}
	if raw, ok := claims[v.cfg.GroupsClaim]; ok {
		if id.Groups, err = groups(raw); err != nil {
			return Identity{}, fmt.Errorf("%w: token of %s: claim %q: %v", ErrInvalid, iss, v.cfg.GroupsClaim, err)
		}
	}
	return id, nil
}

func (is *issuer) get(ctx context.Context, v *OIDCVerifier) (*oidc.IDTokenVerifier, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier != nil {
		return is.verifier, nil
	}
	if v.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, v.cfg.HTTPClient)
	}
	// go-oidc keeps ctx's values (the HTTP client) but not its cancellation
	// for later key fetches, so the caller's ctx is safe here.
	p, err := oidc.NewProvider(ctx, is.url)
	if err != nil {
		return nil, err
	}
	skew := v.cfg.ClockSkew
	now := v.cfg.Now
	is.verifier = p.VerifierContext(ctx, &oidc.Config{
		// Audiences are checked against the whole accepted list afterwards.
		SkipClientIDCheck:    true,
		SupportedSigningAlgs: signingAlgs,
		// go-oidc has no leeway on exp; moving its clock back is one.
		Now: func() time.Time { return now().Add(-skew) },
	})
	return is.verifier, nil
}

// Claimed reads the issuer and subject a token claims, without verifying
// anything, for the audit record of a refused token; each is clipped, and
// empty when it cannot be read.
func Claimed(raw string) (issuer, subject string) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var claims struct {
		Iss any `json:"iss"`
		Sub any `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", ""
	}
	str := func(v any) string {
		s, _ := v.(string)
		return clipClaim(s)
	}
	return str(claims.Iss), str(claims.Sub)
}

// unverifiedIssuer reads "iss" without verifying anything, only to pick the
// key set to verify with.
func unverifiedIssuer(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty token")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a signed JWT (%d parts, want 3)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("payload is not base64url")
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", errors.New("payload is not a JSON object")
	}
	if claims.Iss == "" {
		return "", errors.New("no issuer (iss)")
	}
	return claims.Iss, nil
}

// groups accepts a list of strings or a single string, as providers differ.
func groups(raw json.RawMessage) ([]string, error) {
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, errors.New("neither a string nor a list of strings")
	}
	return []string{one}, nil
}

// clipClaim bounds attacker-chosen claim values quoted in errors and logs.
func clipClaim(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func clipClaims(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, clipClaim(s))
	}
	return out
}
