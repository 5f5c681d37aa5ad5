package token

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLength caps the tokens Verify and Decode look at. Pulsar's tokens
// are a few hundred bytes; the cap keeps a hostile client from making the
// broker base64- and JSON-decode megabytes per connection attempt.
const MaxTokenLength = 16 << 10

// Errors of Verify, wrapped so that errors.Is works. Their messages say why
// a token was refused but never contain the token or the key.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrAlgorithm    = errors.New("token algorithm not accepted")
	ErrSignature    = errors.New("token signature does not verify with the configured key")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not valid yet")
	ErrAudience     = errors.New("token audience not accepted")
	ErrNoRole       = errors.New("token has no role")
	errNoKey        = errors.New("token verifier: set SecretKey or PublicKey")
	errTwoKeys      = errors.New("token verifier: set only one of SecretKey and PublicKey")
	errNegativeSkew = errors.New("token verifier: Leeway must not be negative")
)

// Config configures a Verifier.
type Config struct {
	// SecretKey verifies HS256 tokens.
	SecretKey []byte
	// PublicKey verifies RS256 (RSA) or ES256 (ECDSA P-256) tokens. Exactly
	// one of SecretKey and PublicKey is set.
	PublicKey crypto.PublicKey
	// RoleClaim is the claim holding the role; default "sub" (Pulsar's
	// tokenAuthClaim).
	RoleClaim string
	// Audience, when set, must be in the token's "aud" (a string or a list),
	// like Pulsar's tokenAudience.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
}

// Verifier checks tokens against one key. It is safe for concurrent use.
type Verifier struct {
	alg       string
	key       any
	roleClaim string
	audience  string
	leeway    time.Duration
}

// NewVerifier returns a Verifier for cfg. The key decides the one algorithm
// tokens may use.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{roleClaim: cfg.RoleClaim, audience: cfg.Audience, leeway: cfg.Leeway}
	if v.roleClaim == "" {
		v.roleClaim = "sub"
	}
	if v.leeway < 0 {
		return nil, errNegativeSkew
	}
	var err error
	switch {
	case cfg.SecretKey != nil && cfg.PublicKey != nil:
		return nil, errTwoKeys
	case cfg.SecretKey != nil:
		v.key = bytes.Clone(cfg.SecretKey)
		v.alg, err = SigningAlgorithm(v.key)
	case cfg.PublicKey != nil:
		v.key = cfg.PublicKey
		v.alg, err = verifyAlgorithm(cfg.PublicKey)
	default:
		return nil, errNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	return v, nil
}

// Algorithm is the only algorithm v accepts: HS256, RS256 or ES256.
func (v *Verifier) Algorithm() string { return v.alg }

// Verified is what a valid token says.
type Verified struct {
	Role string
	// ExpiresAt is zero when the token has no exp: it never expires.
	ExpiresAt time.Time
}

// Verify checks tok's algorithm, signature, exp, nbf and audience at time
// now (time.Now when zero) and returns its role. Errors wrap ErrMalformed,
// ErrAlgorithm, ErrSignature, ErrExpired, ErrNotYetValid, ErrAudience or
// ErrNoRole.
func (v *Verifier) Verify(tok string, now time.Time) (Verified, error) {
	if len(tok) > MaxTokenLength {
		return Verified{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLength)
	}
	if now.IsZero() {
		now = time.Now()
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(v.leeway),
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	claims := jwt.MapClaims{}
	t, err := jwt.NewParser(opts...).ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already checked; this keeps the key from ever
		// meeting another algorithm's verifier if that option changes.
		if t.Method == nil || t.Method.Alg() != v.alg {
			return nil, ErrAlgorithm
		}
		return v.key, nil
	})
	if err != nil {
		return Verified{}, v.explain(t, claims, err)
	}
	role, err := v.role(claims)
	if err != nil {
		return Verified{}, err
	}
	out := Verified{Role: role}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		out.ExpiresAt = exp.Time
	}
	return out, nil
}

func (v *Verifier) role(claims jwt.MapClaims) (string, error) {
	raw, ok := claims[v.roleClaim]
	if !ok {
		return "", fmt.Errorf("%w: no %q claim", ErrNoRole, v.roleClaim)
	}
	role, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%w: %q claim is not a string", ErrNoRole, v.roleClaim)
	}
	if strings.TrimSpace(role) == "" {
		return "", fmt.Errorf("%w: %q claim is empty", ErrNoRole, v.roleClaim)
	}
	return role, nil
}

// explain maps golang-jwt's errors to ours, with messages built from fixed
// text, the configured algorithm and the token's times only.
func (v *Verifier) explain(t *jwt.Token, claims jwt.MapClaims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %s", ErrMalformed, malformedReason(err))
	case t != nil && t.Method != nil && t.Method.Alg() != v.alg:
		return fmt.Errorf("%w: signed with %s, want %s", ErrAlgorithm, t.Method.Alg(), v.alg)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// ParseUnverified found no alg or one golang-jwt does not know.
		return fmt.Errorf("%w: alg missing or unknown, want %s", ErrAlgorithm, v.alg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		if exp, e := claims.GetExpirationTime(); e == nil && exp != nil {
			return fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
		}
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		if nbf, e := claims.GetNotBefore(); e == nil && nbf != nil {
			return fmt.Errorf("%w: not before %s", ErrNotYetValid, nbf.UTC().Format(time.RFC3339))
		}
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// Only aud is ever required, and only when Audience is set.
		return fmt.Errorf("%w: want %q in aud", ErrAudience, v.audience)
	case errors.Is(err, jwt.ErrInvalidType):
		return fmt.Errorf("%w: exp, nbf or aud claim has the wrong type", ErrMalformed)
	default:
		return ErrMalformed
	}
}

// malformedReasons are golang-jwt's fixed descriptions of a malformed token;
// its wrapped JSON errors could quote bytes of the token, so only these are
// passed on.
var malformedReasons = []string{
	"token contains an invalid number of segments",
	"could not base64 decode header",
	"could not JSON decode header",
	"could not base64 decode claim",
	"could not JSON decode claim",
	"could not base64 decode signature",
}

func malformedReason(err error) string {
	msg := err.Error()
	for _, r := range malformedReasons {
		if strings.Contains(msg, r) {
			return r
		}
	}
	return "not a compact JWS"
}

// Decode returns a token's header and claims without verifying anything,
// for display (`mb tokens show`). Never base a decision on its result.
// Numbers in claims are json.Number, so that exp prints as written.
func Decode(tok string) (header, claims map[string]any, err error) {
	if len(tok) > MaxTokenLength {
		return nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLength)
	}
	c := jwt.MapClaims{}
	t, _, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(tok, c)
	// An unknown alg (even "none") is still worth showing.
	if err != nil && !errors.Is(err, jwt.ErrTokenUnverifiable) {
		return nil, nil, fmt.Errorf("%w: %s", ErrMalformed, malformedReason(err))
	}
	return t.Header, map[string]any(c), nil
}
