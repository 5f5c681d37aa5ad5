package auth

import (
	"context"
	"net/http"
	"strings"
)

// AuthenticateHTTP authenticates an admin request: a bearer token (or,
// with basic authentication on, Basic user:password) in the Authorization
// header, else the TLS client certificate of an HTTPS request, else the
// anonymous role.
func (s *Service) AuthenticateHTTP(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && s.cfg.TLS {
		return s.authenticateCert(r.TLS.PeerCertificates)
	}
	if scheme, creds, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Basic") && len(s.cfg.BasicUsers) > 0 {
		return s.authenticateBasicHeader(creds)
	}
	return s.AuthenticateBearer(h)
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
