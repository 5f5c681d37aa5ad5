package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Access configures the self-service access control plane (gRPC). It runs
// when GRPCAddr is set and authentication is on, over TLS whenever the
// server has a certificate (Security.TLSCertFile and TLSKeyFile).
type Access struct {
	GRPCAddr string
	// RequireTLS: credentials reach the control plane only over TLS, so its
	// JSON mapping is refused on the plain HTTP port (the gRPC port uses the
	// certificate anyway). Nil: on when the server has a certificate. On
	// without a certificate, New fails.
	RequireTLS *bool
	// AuditRate and AuditBurst bound the refusal records written per caller
	// address (defaults access.DefaultAuditRate per second and
	// DefaultAuditBurst at once); AuditFlushInterval is how often the counts
	// of dropped records are written (default 10s).
	AuditRate          float64
	AuditBurst         int
	AuditFlushInterval time.Duration
	// SigningKeys are private key files; the first signs, all verify (key
	// rotation). Empty: a key generated under DataDir/access.
	SigningKeys []string
	// TokenTTL and LoginTTL are the lifetimes of workload and login tokens
	// (default 1h each).
	TokenTTL time.Duration
	LoginTTL time.Duration

	// OIDCIssuers are trusted for workload identities; the first one is
	// also the login issuer.
	OIDCIssuers          []string
	OIDCLoginClientID    string
	OIDCWorkloadAudience string // default "messagebus"
	OIDCGroupsClaim      string // default "groups"
	// OIDCClockSkew is the leeway on identity tokens' expiry (default 1m).
	OIDCClockSkew time.Duration

	AWSEnabled     bool
	AWSSTSEndpoint string
	AWSRegion      string
	AWSAudience    string // default "messagebus"

	VaultAddr            string
	VaultToken           string
	VaultMount           string
	VaultPrefix          string
	VaultRefreshInterval time.Duration
}

// accessKeys loads the control plane's signing keys when auth can be on, so
// tokens it issued verify even while the control plane itself is off.
func accessKeys(opts Options) ([]access.SigningKey, error) {
	sec := opts.Security
	if sec.AuthTokenSecretKey == "" && sec.AuthTokenPublicKey == "" && sec.TLSTrustCertsFile == "" {
		return nil, nil
	}
	return access.LoadSigningKeys(opts.Access.SigningKeys, filepath.Join(opts.DataDir, "access"))
}

// newAccess builds the control plane and binds its listener; nil when it
// is off.
func (s *Server) newAccess(a *auth.Service, res *meta.Resources, keys []access.SigningKey, reg prometheus.Registerer) error {
	o := s.opts.Access
	if o.GRPCAddr == "" {
		return nil
	}
	if !a.Enabled() {
		s.log.Info("access control plane off: authentication is off")
		return nil
	}
	requireTLS := s.tlsConfig != nil
	if o.RequireTLS != nil {
		requireTLS = *o.RequireTLS
	}
	if requireTLS && s.tlsConfig == nil {
		return errors.New("access control plane: TLS is required (--access-require-tls) but the server has no certificate: " +
			"set --tls-cert-file and --tls-key-file, or --access-require-tls=false to accept credentials in plaintext")
	}
	if s.tlsConfig != nil && s.opts.HTTPSAddr == "" {
		s.log.Warn("no --https-addr: the admin API on --http-addr takes bearer tokens in plaintext; "+
			"the access control plane's gRPC port uses the certificate", "require_tls", requireTLS)
	} else if s.tlsConfig != nil && !s.opts.Security.RefusePlaintextCredentials {
		s.log.Warn("the plaintext listeners --broker-addr and --http-addr take credentials as in Pulsar; "+
			"--refuse-plaintext-credentials refuses them there", "require_tls", requireTLS)
	}
	cfg := access.Config{
		ClusterName:        s.opts.ClusterName,
		Keys:               keys,
		TokenTTL:           o.TokenTTL,
		LoginTTL:           o.LoginTTL,
		TrustedIssuers:     o.OIDCIssuers,
		BrokerServiceURL:   s.advertisedBrokerURL(),
		WebServiceURL:      s.WebURL(),
		Logger:             s.log.With("component", "access"),
		RequireTLS:         requireTLS,
		AuditRate:          o.AuditRate,
		AuditBurst:         o.AuditBurst,
		AuditFlushInterval: o.AuditFlushInterval,
		Metrics:            reg,
		AWS: access.AWSConfig{
			Enabled: o.AWSEnabled, STSEndpoint: o.AWSSTSEndpoint, Region: o.AWSRegion, Audience: o.AWSAudience,
		},
		Vault: access.VaultConfig{
			Address: o.VaultAddr, Token: o.VaultToken, Mount: o.VaultMount, Prefix: o.VaultPrefix,
			RefreshInterval: o.VaultRefreshInterval,
		},
	}
	if cfg.AWS.Enabled {
		if cfg.AWS.STSEndpoint == "" {
			cfg.AWS.STSEndpoint = identity.DefaultSTSEndpoint
		}
		if cfg.AWS.Region == "" {
			cfg.AWS.Region = identity.DefaultSTSRegion
		}
		if cfg.AWS.Audience == "" {
			cfg.AWS.Audience = "messagebus"
		}
	}
	if len(o.OIDCIssuers) > 0 {
		aud := o.OIDCWorkloadAudience
		if aud == "" {
			aud = "messagebus"
		}
		cfg.Workloads = identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: o.OIDCIssuers, Audiences: []string{aud}, GroupsClaim: o.OIDCGroupsClaim, ClockSkew: o.OIDCClockSkew})
		if o.OIDCLoginClientID != "" {
			cfg.OIDCIssuer = o.OIDCIssuers[0]
			cfg.LoginClientID = o.OIDCLoginClientID
			cfg.Login = identity.NewOIDCVerifier(identity.OIDCConfig{Issuers: o.OIDCIssuers[:1], Audiences: []string{o.OIDCLoginClientID}, GroupsClaim: o.OIDCGroupsClaim, ClockSkew: o.OIDCClockSkew})
		}
	}
	svc, err := access.New(cfg, a, res)
	if err != nil {
		return err
	}
	if s.grpcL, err = net.Listen("tcp", o.GRPCAddr); err != nil {
		return fmt.Errorf("listen on grpc address: %w", err)
	}
	gopts := svc.ServerOptions()
	if s.tlsConfig != nil {
		// Bearer tokens cross this port: with a certificate, never in clear.
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.tlsConfig)))
	}
	s.grpc = grpc.NewServer(gopts...)
	svc.Register(s.grpc)
	s.access = svc
	return nil
}

func (s *Server) startAccess() {
	if s.grpc == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopAccess = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.access.Run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.grpcL); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
}

// shutdownAccess stops the control plane, waiting for calls in flight until
// ctx ends.
func (s *Server) shutdownAccess(ctx context.Context) {
	if s.grpc == nil {
		return
	}
	s.stopAccess()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

// GRPCAddr is the control plane's address ("" when it is off).
func (s *Server) GRPCAddr() string {
	if s.grpcL == nil {
		return ""
	}
	return net.JoinHostPort(loopbackHost(s.grpcL), port(s.grpcL))
}
