package auth

import (
	"context"
	"net/http"
)

// AuthenticateHTTP authenticates an admin request: a bearer token in the
// Authorization header, else the TLS client certificate of an HTTPS
// request, else the anonymous role.
func (s *Service) AuthenticateHTTP(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && s.cfg.TLS {
		return s.authenticateCert(r.TLS.PeerCertificates)
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
