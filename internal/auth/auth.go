// Package auth authenticates clients and authorizes what they do, the way
// Pulsar does, so Pulsar clients, tokens and tools work unchanged.
//
// Authentication turns credentials into a role: a JWT (package token; "sub"
// is the role), a TLS client certificate (its common name is the role), or
// nothing at all, which gives the anonymous role when one is configured.
// Authorization decides what a role may do: superusers everything; a
// tenant's admin roles everything inside that tenant; other roles what the
// namespace and topic grants (produce, consume, functions) allow.
//
// The broker calls Authenticate on CONNECT and AUTH_RESPONSE and the
// Can* checks on lookups, producers and consumers; the admin API calls
// AuthenticateHTTP and the same checks for each request. A nil *Service
// means authentication and authorization are off.
package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/auth/token"
)

// Method names, as clients send them in CONNECT's auth_method_name.
const (
	MethodToken = "token"
	MethodTLS   = "tls"
	// MethodBasic is in basic.go.
	MethodAnonymous = "anonymous"
)

var (
	// ErrUnauthenticated is returned for missing, malformed, expired or
	// wrongly signed credentials.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrForbidden is returned when an authenticated role may not do something.
	ErrForbidden = errors.New("not authorized")
)

// ErrUnknownKeyID is wrapped by the refusal of a token whose "kid" names
// no key this server verifies with.
var ErrUnknownKeyID = errors.New("unknown token key id")

// clipKID bounds the attacker-chosen key id quoted in errors.
func clipKID(kid string) string {
	if len(kid) > 64 {
		return kid[:64] + "..."
	}
	return kid
}

// Principal is an authenticated client.
type Principal struct {
	Role   string
	Method string
	// ExpiresAt is when the credentials stop being valid; zero when never.
	ExpiresAt time.Time
}

// Config configures authentication and authorization.
type Config struct {
	// Token verifies JWTs; nil turns token authentication off unless
	// KeyedTokens has keys.
	Token *token.Verifier
	// KeyedTokens verify tokens whose "kid" header names them: the keys the
	// access control plane signs with (several during a key rotation).
	KeyedTokens map[string]*token.Verifier
	// BasicUsers turns on basic authentication (user and password, as
	// Pulsar's AuthenticationProviderBasic) when not empty.
	BasicUsers BasicUsers
	// TLS authenticates TLS client certificates (verified by the listener
	// against the trust store) by their subject's common name.
	TLS bool
	// Superusers may do everything.
	Superusers []string
	// AnonymousRole is given to clients without credentials; when empty
	// they are refused.
	AnonymousRole string
	// Policies is where tenants (admin roles) and namespace policies
	// (grants) are read: the broker's policy cache (meta.PolicyCache), so
	// that authorization and policy enforcement share one source.
	Policies PolicyReader
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service authenticates and authorizes. A nil *Service allows everything.
type Service struct {
	cfg        Config
	superusers map[string]bool
}

// New returns a Service, or nil when cfg configures no authentication
// provider: auth is on as soon as one is configured.
func New(cfg Config) *Service {
	if cfg.Token == nil && len(cfg.KeyedTokens) == 0 && !cfg.TLS && len(cfg.BasicUsers) == 0 {
		return nil
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, superusers: map[string]bool{}}
	for _, r := range cfg.Superusers {
		if r = strings.TrimSpace(r); r != "" {
			s.superusers[r] = true
		}
	}
	return s
}

// Enabled reports whether clients must authenticate.
func (s *Service) Enabled() bool { return s != nil }

// AuthenticateBearer authenticates the value of an HTTP Authorization
// header or gRPC "authorization" metadata: "Bearer <token>", or empty for
// the anonymous role, if any.
func (s *Service) AuthenticateBearer(header string) (Principal, error) {
	if header == "" {
		return s.anonymous()
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, fmt.Errorf("%w: authorization must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	return s.authenticateToken(tok)
}

// Authenticate checks the credentials a client presents on the binary
// protocol: the auth method and data of CONNECT or AUTH_RESPONSE, and the
// certificates of a TLS connection (nil for plain TCP).
func (s *Service) Authenticate(method string, data []byte, peer []*x509.Certificate) (Principal, error) {
	switch method {
	case MethodToken:
		return s.authenticateToken(string(data))
	case MethodTLS:
		return s.authenticateCert(peer)
	case MethodBasic:
		return s.authenticateBasic(string(data))
	case "", "none":
		return s.anonymous()
	default:
		return Principal{}, fmt.Errorf("%w: auth method %q is not supported (token, tls, basic)", ErrUnauthenticated, method)
	}
}

func (s *Service) authenticateToken(tok string) (Principal, error) {
	// Some clients send the HTTP form on the binary protocol too.
	tok = strings.TrimSpace(strings.TrimPrefix(tok, "Bearer "))
	if tok == "" {
		return Principal{}, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	verifier := s.cfg.Token
	unknownKid := "" // a kid naming none of the keyed verifiers
	if len(s.cfg.KeyedTokens) > 0 {
		// The kid only selects a key; the signature check decides.
		if h, _, err := token.Decode(tok); err == nil {
			if kid, ok := h["kid"].(string); ok {
				if s.cfg.KeyedTokens[kid] != nil {
					verifier = s.cfg.KeyedTokens[kid]
				} else {
					unknownKid = kid
				}
			}
		}
	}
	// A token naming a key we do not have, that the configured key does not
	// verify either, was most likely signed by an access signing key that
	// was rotated out: saying so beats "algorithm not accepted".
	unknown := func() (Principal, error) {
		return Principal{}, fmt.Errorf("%w: %w: token key id %q is unknown (signed by a key rotated out, or by another issuer)",
			ErrUnauthenticated, ErrUnknownKeyID, clipKID(unknownKid))
	}
	if verifier == nil {
		if unknownKid != "" {
			return unknown()
		}
		return Principal{}, fmt.Errorf("%w: token authentication is not enabled", ErrUnauthenticated)
	}
	v, err := verifier.Verify(tok, s.cfg.Now())
	if err != nil {
		if unknownKid != "" && (errors.Is(err, token.ErrAlgorithm) || errors.Is(err, token.ErrSignature)) {
			return unknown()
		}
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return Principal{Role: v.Role, Method: MethodToken, ExpiresAt: v.ExpiresAt}, nil
}

func (s *Service) authenticateCert(peer []*x509.Certificate) (Principal, error) {
	if !s.cfg.TLS {
		return Principal{}, fmt.Errorf("%w: TLS authentication is not enabled", ErrUnauthenticated)
	}
	if len(peer) == 0 {
		return Principal{}, fmt.Errorf("%w: no client certificate", ErrUnauthenticated)
	}
	cn := peer[0].Subject.CommonName
	if cn == "" {
		return Principal{}, fmt.Errorf("%w: client certificate has no common name", ErrUnauthenticated)
	}
	return Principal{Role: cn, Method: MethodTLS, ExpiresAt: peer[0].NotAfter}, nil
}

func (s *Service) anonymous() (Principal, error) {
	if s.cfg.AnonymousRole == "" {
		return Principal{}, fmt.Errorf("%w: credentials are required", ErrUnauthenticated)
	}
	return Principal{Role: s.cfg.AnonymousRole, Method: MethodAnonymous}, nil
}

// Expired reports whether p's credentials have expired.
func (s *Service) Expired(p Principal) bool {
	return !p.ExpiresAt.IsZero() && !s.cfg.Now().Before(p.ExpiresAt)
}
