package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Reason classes of refused requests, as audit records and the
// mb_access_refusals_total metric name them.
const (
	ReasonInvalidRequest  = "invalid_request"    // missing or malformed tenant, role, identity, proof or body
	ReasonForeignRole     = "foreign_role"       // a role with another tenant's prefix
	ReasonUntrustedIssuer = "untrusted_issuer"   // identity token of an issuer this server does not trust
	ReasonExpired         = "expired"            // identity credential expired
	ReasonAudience        = "wrong_audience"     // identity token or signed request for another audience
	ReasonSignature       = "bad_signature"      // identity token signed by none of its issuer's keys (forged)
	ReasonInvalid         = "invalid_credential" // identity credential otherwise invalid (malformed, no subject, refused by STS)
	ReasonReplay          = "replay"             // AWS signed request presented twice
	ReasonUnavailable     = "idp_unavailable"    // identity provider or STS unreachable
	ReasonNotConfigured   = "not_configured"     // login, OIDC, AWS or Vault not set up on this server
	ReasonUnknownTenant   = "unknown_tenant"     // tenant does not exist (or is not managed here, for login)
	ReasonNoAssociation   = "no_association"     // identity not associated with the role
	ReasonNotMember       = "not_member"         // login: in none of the tenant's groups
	ReasonUnauthenticated = "unauthenticated"    // caller's broker token missing or invalid
	ReasonForbidden       = "forbidden"          // caller may not do this (not a superuser, not the tenant's admin)
	ReasonPlaintext       = "plaintext"          // JSON mapping over plain HTTP while TLS is required
	ReasonNotFound        = "not_found"          // namespace or association does not exist
	ReasonExists          = "exists"             // tenant already exists
	ReasonInternal        = "internal"           // the server failed
)

// refusedAction names the audit action of a refused call per method.
var refusedAction = map[string]string{
	"GetCredentials":    "credentials-refused",
	"Login":             "login-refused",
	"CreateTenant":      "create-tenant-refused",
	"AssociateRole":     "associate-role-refused",
	"RemoveAssociation": "remove-association-refused",
	"ListRoles":         "list-roles-refused",
	"ListTenants":       "list-tenants-refused",
	"WhoAmI":            "whoami-refused",
	"ListAudit":         "audit-refused",
	"GetConfig":         "get-config-refused",
}

// call is what a method learns about a request that its refusal's audit
// record needs; the guard puts one in the context of every call.
type call struct {
	source   string
	reason   string
	identity string
	issuer   string
	verified bool // identity was proven, not only claimed
}

type callKey struct{}

func callOf(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return &call{} // a method called directly (tests): nothing is read back
	}
	return c
}

// refuse records the reason class of a refusal and returns err.
func refuse(ctx context.Context, reason string, err error) error {
	callOf(ctx).reason = reason
	return err
}

// claim records the identity a request claims, not verified (yet).
func claim(ctx context.Context, ident, issuer string) {
	c := callOf(ctx)
	c.identity, c.issuer, c.verified = ident, issuer, false
}

// proven records the identity a request has proven.
func proven(ctx context.Context, ident, issuer string) {
	c := callOf(ctx)
	c.identity, c.issuer, c.verified = ident, issuer, true
}

// tenantRoleRequest is implemented by requests naming a tenant and a role.
type tenantRequest interface{ GetTenant() string }
type roleRequest interface{ GetRole() string }

// guard runs one call of method (the gRPC method's short name) from source
// (the caller's address) and audits it if it is refused, whichever
// transport it came by.
func (s *Service) guard(ctx context.Context, method, source string, req any, h func(context.Context) (any, error)) (any, error) {
	c := &call{source: source}
	ctx = context.WithValue(ctx, callKey{}, c)
	resp, err := h(ctx)
	if err != nil {
		s.auditRefusal(ctx, method, req, c, err)
	}
	return resp, err
}

// auditRefusal writes the refusal's record unless the source's rate is
// exceeded; the refusal is counted either way.
func (s *Service) auditRefusal(ctx context.Context, method string, req any, c *call, err error) {
	st := status.Convert(err)
	reason := c.reason
	if reason == "" {
		reason = reasonOfCode(st.Code())
	}
	s.metrics.refusals.WithLabelValues(reason).Inc()
	action := refusedAction[method]
	if action == "" {
		action = "refused"
	}
	rec := meta.AuditRecord{Action: action, Reason: reason, Identity: c.identity, Issuer: c.issuer, Source: c.source,
		Detail: clip(st.Message(), 500)}
	if r, ok := req.(tenantRequest); ok {
		rec.Tenant = clip(r.GetTenant(), 200)
	}
	if r, ok := req.(roleRequest); ok && r.GetRole() != "" {
		rec.Role = clip(r.GetRole(), 200)
		if full, err := FullRole(rec.Tenant, r.GetRole()); err == nil {
			rec.Role = full
		}
	}
	// The actor is who the server knows the caller to be; a mere claim
	// stays in Identity.
	switch p := caller(ctx); {
	case p.Role != "":
		rec.Actor = p.Role
	case c.verified:
		rec.Actor = c.identity
	default:
		rec.Actor = "unauthenticated"
	}
	ok, dropped := s.limit.allow(c.source)
	if dropped > 0 {
		s.auditDropped(ctx, c.source, dropped)
	}
	if !ok {
		s.metrics.dropped.Inc()
		return
	}
	s.appendAudit(ctx, rec)
}

// auditDropped writes the summary of refusal records the rate limit dropped.
func (s *Service) auditDropped(ctx context.Context, source string, n uint32) {
	s.appendAudit(ctx, meta.AuditRecord{Actor: "messagebus", Action: "audit-dropped", Source: source, Dropped: n,
		Detail: fmt.Sprintf("%d refusal records from %s dropped by the audit rate limit (%d at once, then %g per second)",
			n, source, s.limit.burst, s.limit.rate)})
}

// flushDropped writes the summaries of every source with dropped records.
func (s *Service) flushDropped(ctx context.Context) {
	for src, n := range s.limit.flush() {
		s.auditDropped(ctx, src, n)
	}
}

// runAuditFlush writes dropped-record summaries every interval until ctx ends.
func (s *Service) runAuditFlush(ctx context.Context) {
	t := time.NewTicker(s.cfg.AuditFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushDropped(context.WithoutCancel(ctx))
			return
		case <-t.C:
			s.flushDropped(ctx)
		}
	}
}

func reasonOfCode(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return ReasonInvalidRequest
	case codes.Unauthenticated:
		return ReasonUnauthenticated
	case codes.PermissionDenied:
		return ReasonForbidden
	case codes.NotFound:
		return ReasonNotFound
	case codes.AlreadyExists:
		return ReasonExists
	case codes.FailedPrecondition:
		return ReasonNotConfigured
	case codes.Unavailable:
		return ReasonUnavailable
	}
	return ReasonInternal
}

// identityReason classifies an identity verification error.
func identityReason(err error) string {
	switch {
	case errors.Is(err, identity.ErrIssuerUnavailable):
		return ReasonUnavailable
	case errors.Is(err, identity.ErrUntrustedIssuer):
		return ReasonUntrustedIssuer
	case errors.Is(err, identity.ErrExpired):
		return ReasonExpired
	case errors.Is(err, identity.ErrAudience):
		return ReasonAudience
	case errors.Is(err, identity.ErrReplay):
		return ReasonReplay
	case errors.Is(err, identity.ErrSignature):
		return ReasonSignature
	case errors.Is(err, identity.ErrInvalid):
		return ReasonInvalid
	case status.Code(err) == codes.FailedPrecondition:
		return ReasonNotConfigured
	}
	return ReasonUnavailable
}

// claimedBearer reads the role (and issuer) a bearer token claims, without
// verifying it, for the record of a refused caller.
func claimedBearer(header string) (role, issuer string) {
	_, tok, ok := strings.Cut(header, " ")
	if !ok {
		return "", ""
	}
	_, claims, err := token.Decode(strings.TrimSpace(tok))
	if err != nil {
		return "", ""
	}
	sub, _ := claims["sub"].(string)
	iss, _ := claims["iss"].(string)
	return clip(sub, 200), clip(iss, 200)
}

// sourceOfPeer is the caller's IP address on gRPC.
func sourceOfPeer(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return hostOf(p.Addr.String())
	}
	return "unknown"
}

// hostOf strips the port: a client's port changes with each connection,
// the rate limit is per address.
func hostOf(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().String()
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	if addr == "" {
		return "unknown"
	}
	return addr
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// accessMetrics count refusals and the audit records the rate limit drops.
type accessMetrics struct {
	refusals *prometheus.CounterVec
	dropped  prometheus.Counter
}

func newAccessMetrics(reg prometheus.Registerer) (accessMetrics, error) {
	m := accessMetrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_access_refusals_total",
			Help: "Requests the access control plane refused, by reason class."}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_access_audit_dropped_total",
			Help: "Refusal audit records not written because their source exceeded the audit rate limit."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refusals, m.dropped} {
			if err := reg.Register(c); err != nil {
				return m, fmt.Errorf("access metrics: %w", err)
			}
		}
	}
	return m, nil
}

// auditLimiter is a token bucket per source address for refusal records,
// so that one prober cannot flood the audit log. It remembers how many
// records of each source it dropped until they are summarised.
type auditLimiter struct {
	rate  float64 // records per second
	burst int
	now   func() time.Time

	mu      sync.Mutex
	sources map[string]*auditBucket
}

type auditBucket struct {
	tokens  float64
	last    time.Time
	dropped uint32
}

// maxAuditSources bounds the limiter's memory; past it, new sources share
// one bucket.
const maxAuditSources = 10000

const overflowSource = "other-sources"

func newAuditLimiter(rate float64, burst int, now func() time.Time) *auditLimiter {
	return &auditLimiter{rate: rate, burst: burst, now: now, sources: map[string]*auditBucket{}}
}

// allow takes a token of source's bucket; dropped is the count of records
// dropped before, to be summarised now (the count restarts at zero).
func (l *auditLimiter) allow(source string) (ok bool, dropped uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.sources[source]
	if b == nil {
		if len(l.sources) >= maxAuditSources {
			l.pruneLocked(now)
		}
		if len(l.sources) >= maxAuditSources {
			source = overflowSource
			b = l.sources[source]
		}
		if b == nil {
			b = &auditBucket{tokens: float64(l.burst), last: now}
			l.sources[source] = b
		}
	}
	b.tokens = min(float64(l.burst), b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		b.dropped++
		return false, 0
	}
	b.tokens--
	dropped, b.dropped = b.dropped, 0
	return true, dropped
}

// flush returns the dropped counts of all sources and restarts them, and
// forgets sources whose bucket is full again.
func (l *auditLimiter) flush() map[string]uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint32{}
	for src, b := range l.sources {
		if b.dropped > 0 {
			out[src] = b.dropped
			b.dropped = 0
		}
	}
	l.pruneLocked(l.now())
	return out
}

func (l *auditLimiter) pruneLocked(now time.Time) {
	for src, b := range l.sources {
		if b.dropped == 0 && b.tokens+now.Sub(b.last).Seconds()*l.rate >= float64(l.burst) {
			delete(l.sources, src)
		}
	}
}
