package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// AuthenticateHTTP authenticates an admin request: a bearer token in the
// Authorization header, else the TLS client certificate of an HTTPS
// request, else the anonymous role.
func (s *Service) AuthenticateHTTP(r *http.Request) (Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Principal{}, fmt.Errorf("%w: Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
		}
		return s.authenticateToken(tok)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && s.cfg.TLS {
		return s.authenticateCert(r.TLS.PeerCertificates)
	}
	return s.anonymous()
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal WithPrincipal stored, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
