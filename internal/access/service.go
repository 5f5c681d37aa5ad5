// Package access is the access control plane, the self-service access API (api/access/v1,
// gRPC): teams create tenants administered by their identity-provider
// groups, bind workload identities to tenant-prefixed roles, and exchange
// identities for short-lived broker tokens, without a ticket.
//
// It keeps its records in the metadata store (meta/access.go), signs tokens
// with its own keys (keys.go; brokers verify them by kid), verifies
// identities through package identity, and may keep tokens fresh in a
// Vault KV v2 store (vault.go). Every change is audited.
package access

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// OIDCVerifier verifies OIDC tokens of trusted issuers.
type OIDCVerifier interface {
	Verify(ctx context.Context, raw string) (identity.Identity, error)
	Trusted(issuer string) bool
}

// Config configures the control plane.
type Config struct {
	// ClusterName is the cluster the tenants it creates may use (default standalone).
	ClusterName string
	// Keys sign tokens; the first one signs new tokens.
	Keys []SigningKey
	// TokenTTL is the lifetime of workload tokens, LoginTTL of login tokens.
	TokenTTL time.Duration
	LoginTTL time.Duration

	// Login verifies people's ID tokens (audience: LoginClientID);
	// Workloads verifies workload OIDC tokens. Either may be nil.
	Login         OIDCVerifier
	Workloads     OIDCVerifier
	OIDCIssuer    string // told to clients for login
	LoginClientID string
	LoginScopes   []string
	// TrustedIssuers are the issuers workload identities may come from.
	TrustedIssuers []string

	AWS AWSConfig

	BrokerServiceURL string
	WebServiceURL    string

	Vault VaultConfig

	// RequireTLS refuses the JSON mapping over plain HTTP: credentials only
	// cross TLS (gRPC is served over TLS whenever the server has a
	// certificate).
	RequireTLS bool

	// Refusals are audited at most AuditBurst at once, then AuditRate per
	// second, per caller address (defaults 20 and 1); records beyond that
	// are counted and summarised in an "audit-dropped" record, written
	// before the source's next record and every AuditFlushInterval (10s).
	AuditRate          float64
	AuditBurst         int
	AuditFlushInterval time.Duration
	// Metrics registers mb_access_refusals_total and
	// mb_access_audit_dropped_total; nil: not exported.
	Metrics prometheus.Registerer

	Logger *slog.Logger
	Now    func() time.Time
}

// Service implements accessv1.AccessServer.
type Service struct {
	accessv1.UnimplementedAccessServer
	cfg  Config
	auth *auth.Service
	meta *meta.Resources
	log  *slog.Logger
	aws  awsVerifier
	vlt  *delivery

	metrics accessMetrics
	limit   *auditLimiter
}

// New returns the service. a authenticates callers' broker tokens and
// decides who administers what.
func New(cfg Config, a *auth.Service, md *meta.Resources) (*Service, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("access: no signing key")
	}
	if !a.Enabled() {
		return nil, errors.New("access: authentication is off; there is nothing to issue tokens for")
	}
	if cfg.ClusterName == "" {
		// The tenants it creates must name a cluster, as the admin API requires.
		cfg.ClusterName = "standalone"
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = time.Hour
	}
	if len(cfg.LoginScopes) == 0 {
		cfg.LoginScopes = []string{"openid", "email", "groups"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AuditRate <= 0 {
		cfg.AuditRate = DefaultAuditRate
	}
	if cfg.AuditBurst <= 0 {
		cfg.AuditBurst = DefaultAuditBurst
	}
	if cfg.AuditFlushInterval <= 0 {
		cfg.AuditFlushInterval = 10 * time.Second
	}
	metrics, err := newAccessMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, auth: a, meta: md, log: cfg.Logger, metrics: metrics,
		limit: newAuditLimiter(cfg.AuditRate, cfg.AuditBurst, cfg.Now)}
	s.aws = newAWSVerifier(cfg.AWS)
	vlt, err := newDelivery(s, cfg.Vault)
	if err != nil {
		return nil, err
	}
	s.vlt = vlt
	return s, nil
}

// Defaults of the audit rate limit of refusals, per caller address.
const (
	DefaultAuditRate  = 1.0 // records per second
	DefaultAuditBurst = 20
)

// Register adds the service to a gRPC server, with the interceptor that
// authenticates callers.
func (s *Service) Register(g *grpc.Server) { accessv1.RegisterAccessServer(g, s) }

// ServerOptions are the options a gRPC server hosting the service needs.
func (s *Service) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.authenticate)}
}

// Run keeps Vault deliveries fresh and writes the summaries of dropped
// audit records until ctx ends.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runAuditFlush(ctx)
	}()
	s.vlt.run(ctx)
	<-done
}

// publicMethods take an identity proof, or nothing, instead of a token.
var publicMethods = map[string]bool{
	accessv1.Access_GetConfig_FullMethodName:      true,
	accessv1.Access_Login_FullMethodName:          true,
	accessv1.Access_GetCredentials_FullMethodName: true,
}

type callerKey struct{}

// authenticate checks the caller's broker token ("authorization: Bearer")
// and audits refused calls.
func (s *Service) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	return s.guard(ctx, method, sourceOfPeer(ctx), req, func(ctx context.Context) (any, error) {
		if publicMethods[info.FullMethod] {
			return h(ctx, req)
		}
		var header string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				header = v[0]
			}
		}
		ctx, err := s.withCaller(ctx, header)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	})
}

// withCaller authenticates an authorization header or metadata value and
// returns ctx carrying the caller, or an Unauthenticated status.
func (s *Service) withCaller(ctx context.Context, header string) (context.Context, error) {
	p, err := s.auth.AuthenticateBearer(header)
	if err != nil {
		role, iss := claimedBearer(header)
		claim(ctx, role, iss)
		return nil, refuse(ctx, ReasonUnauthenticated, status.Error(codes.Unauthenticated, err.Error()))
	}
	return context.WithValue(ctx, callerKey{}, p), nil
}

func caller(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(callerKey{}).(auth.Principal)
	return p
}

// requireTenantAdmin answers PermissionDenied unless the caller
// administers tenant (superusers administer every tenant).
func (s *Service) requireTenantAdmin(ctx context.Context, tenant string) error {
	if tenant == "" {
		return status.Error(codes.InvalidArgument, "tenant is required")
	}
	role := caller(ctx).Role
	ok, err := s.auth.IsTenantAdmin(ctx, role, tenant)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if !ok {
		return refuse(ctx, ReasonForbidden, status.Errorf(codes.PermissionDenied, "role %q does not administer tenant %q", role, tenant))
	}
	// Only superusers get here for a missing tenant: say so.
	if _, err := s.meta.Tenant(ctx, tenant); errors.Is(err, meta.ErrNotFound) {
		return refuse(ctx, ReasonUnknownTenant, status.Errorf(codes.NotFound, "tenant %q does not exist", tenant))
	} else if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

// issue signs a broker token for role.
func (s *Service) issue(role string, ttl time.Duration, who string) (string, time.Time, error) {
	k := s.cfg.Keys[0]
	exp := s.cfg.Now().Add(ttl).Truncate(time.Second)
	extra := map[string]any{"iss": "messagebus-access", "iat": s.cfg.Now().Unix()}
	if who != "" {
		extra["mb_identity"] = who
	}
	tok, err := token.Create(k.Signer, token.Claims{Subject: role, ExpiresAt: exp, KeyID: k.KID, Extra: extra})
	return tok, exp, err
}

// audit records a change; a failure to record is logged, and the change
// stands, since undoing it could fail the same way.
func (s *Service) audit(ctx context.Context, actor, action, tenant, detail string) {
	s.appendAudit(ctx, meta.AuditRecord{Actor: actor, Action: action, Tenant: tenant, Detail: detail})
}

func (s *Service) appendAudit(ctx context.Context, rec meta.AuditRecord) {
	rec.Time = s.cfg.Now().UTC()
	// A caller that gave up must not cost the record.
	if err := s.meta.AppendAudit(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("audit record lost", "action", rec.Action, "tenant", rec.Tenant, "err", err)
	}
}

// GetConfig tells clients how to log in and where the broker is.
func (s *Service) GetConfig(context.Context, *accessv1.GetConfigRequest) (*accessv1.Config, error) {
	c := &accessv1.Config{
		OidcIssuer:       s.cfg.OIDCIssuer,
		LoginClientId:    s.cfg.LoginClientID,
		LoginScopes:      s.cfg.LoginScopes,
		BrokerServiceUrl: s.cfg.BrokerServiceURL,
		WebServiceUrl:    s.cfg.WebServiceURL,
		AwsStsEndpoint:   s.cfg.AWS.STSEndpoint,
		AwsRegion:        s.cfg.AWS.Region,
		AwsAudience:      s.cfg.AWS.Audience,
	}
	if s.vlt != nil {
		c.VaultMount, c.VaultPrefix = s.vlt.cfg.Mount, s.vlt.cfg.Prefix
	}
	return c, nil
}
