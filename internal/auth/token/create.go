package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is what Create puts in a token.
type Claims struct {
	// Subject is the role, the "sub" claim. Required.
	Subject string
	// ExpiresAt becomes "exp" (whole seconds); zero means no exp claim,
	// a token that never expires, as Pulsar makes without --expiry-time.
	ExpiresAt time.Time
	// KeyID is the "kid" header when set.
	KeyID string
	// Extra claims (e.g. "aud"); they may not replace "sub" or "exp".
	Extra map[string]any
	// Header holds extra header fields (Pulsar's --headers); "alg" is
	// reserved and "kid" must agree with KeyID.
	Header map[string]any
}

// Create signs a token for c. key is a secret key ([]byte, HS256), or an
// *rsa.PrivateKey (RS256) or *ecdsa.PrivateKey on P-256 (ES256) as returned
// by ParsePrivateKey. The header is exactly Pulsar's: {"alg":...} plus any
// kid or extra header fields, with no "typ".
func Create(key any, c Claims) (string, error) {
	alg, err := SigningAlgorithm(key)
	if err != nil {
		return "", err
	}
	if c.Subject == "" {
		return "", errors.New("create token: subject (role) is required")
	}
	claims := jwt.MapClaims{"sub": c.Subject}
	if !c.ExpiresAt.IsZero() {
		claims["exp"] = jwt.NewNumericDate(c.ExpiresAt)
	}
	for k, v := range c.Extra {
		if k == "sub" || k == "exp" {
			return "", fmt.Errorf("create token: extra claim %q: use Subject or ExpiresAt", k)
		}
		claims[k] = v
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	t.Header = map[string]any{"alg": alg}
	for k, v := range c.Header {
		if k == "alg" {
			return "", errors.New(`create token: header "alg" is set by the key`)
		}
		t.Header[k] = v
	}
	if c.KeyID != "" {
		if kid, ok := t.Header["kid"]; ok && kid != c.KeyID {
			return "", errors.New(`create token: header "kid" differs from KeyID`)
		}
		t.Header["kid"] = c.KeyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return s, nil
}
