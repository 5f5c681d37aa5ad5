package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/auth/token"
)

// setupSecurity makes the authentication service (on when a provider is
// configured) and the TLS configuration of the TLS listeners.
func (s *Server) setupSecurity(policies auth.PolicyReader, keys []access.SigningKey) (*auth.Service, error) {
	a, err := newAuthService(s.opts.Security, policies, keys)
	if err != nil {
		return nil, err
	}
	if s.tlsConfig, err = newTLSConfig(s.opts.Security); err != nil {
		return nil, err
	}
	return a, nil
}

// newAuthService builds authentication and authorization from the options;
// nil when no provider is configured.
func newAuthService(sec Security, policies auth.PolicyReader, keys []access.SigningKey) (*auth.Service, error) {
	if sec.AuthTokenSecretKey != "" && sec.AuthTokenPublicKey != "" {
		return nil, errors.New("configure either a token secret key or a token public key, not both")
	}
	var verifier *token.Verifier
	if sec.AuthTokenSecretKey != "" || sec.AuthTokenPublicKey != "" {
		cfg := token.Config{RoleClaim: sec.AuthTokenRoleClaim}
		var err error
		if sec.AuthTokenSecretKey != "" {
			cfg.SecretKey, err = token.LoadSecretKey(sec.AuthTokenSecretKey)
		} else {
			cfg.PublicKey, err = token.LoadPublicKey(sec.AuthTokenPublicKey)
		}
		if err != nil {
			return nil, fmt.Errorf("token authentication: %w", err)
		}
		if verifier, err = token.NewVerifier(cfg); err != nil {
			return nil, fmt.Errorf("token authentication: %w", err)
		}
	}
	keyed, err := access.Verifiers(keys)
	if err != nil {
		return nil, err
	}
	var basic auth.BasicUsers
	if sec.BasicAuthConf != "" {
		if basic, err = auth.LoadBasicUsers(sec.BasicAuthConf); err != nil {
			return nil, fmt.Errorf("basic authentication: %w", err)
		}
	}
	a := auth.New(auth.Config{
		BasicUsers:    basic,
		Token:         verifier,
		KeyedTokens:   keyed,
		TLS:           sec.TLSTrustCertsFile != "",
		Superusers:    sec.SuperuserRoles,
		AnonymousRole: sec.AnonymousRole,
		Policies:      policies,
	})
	if a == nil && (len(sec.SuperuserRoles) > 0 || sec.AnonymousRole != "") {
		return nil, errors.New("superuser or anonymous roles need an authentication provider (a token key, a TLS trust store or a basic auth conf)")
	}
	return a, nil
}

// newTLSConfig builds the server side of TLS; nil when no certificate is
// configured. A certificate is loaded even without a TLS listener of its
// own: the access control plane's gRPC port uses it.
func newTLSConfig(sec Security) (*tls.Config, error) {
	listeners := sec.BrokerTLSAddr != "" || sec.HTTPSAddr != ""
	if !listeners && (sec.TLSTrustCertsFile != "" || sec.TLSRequireClientCert) {
		return nil, errors.New("TLS client options need a TLS listener (broker TLS or HTTPS address)")
	}
	if sec.TLSCertFile == "" && sec.TLSKeyFile == "" {
		if sec.RefusePlaintextCredentials {
			return nil, errors.New("refusing credentials in plaintext (--refuse-plaintext-credentials) needs a certificate: set --tls-cert-file and --tls-key-file")
		}
		if listeners {
			return nil, errors.New("TLS listeners need a certificate and a key file")
		}
		return nil, nil
	}
	if sec.TLSCertFile == "" || sec.TLSKeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and its key (--tls-cert-file and --tls-key-file)")
	}
	cert, err := tls.LoadX509KeyPair(sec.TLSCertFile, sec.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if sec.TLSTrustCertsFile != "" {
		pem, err := os.ReadFile(sec.TLSTrustCertsFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS trust certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificates in %s", sec.TLSTrustCertsFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if sec.RefusePlaintextCredentials && (sec.BrokerTLSAddr == "" || sec.HTTPSAddr == "") {
		return nil, errors.New("refusing credentials in plaintext (--refuse-plaintext-credentials) needs both TLS listeners for clients to use instead: set --broker-tls-addr and --https-addr")
	}
	if sec.TLSRequireClientCert {
		if cfg.ClientCAs == nil {
			return nil, errors.New("requiring client certificates needs a trust store to verify them")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// listen binds every configured address.
func (s *Server) listen() error {
	var err error
	if s.brokerL, err = net.Listen("tcp", s.opts.BrokerAddr); err != nil {
		return fmt.Errorf("listen on broker address: %w", err)
	}
	if s.httpL, err = net.Listen("tcp", s.opts.HTTPAddr); err != nil {
		return fmt.Errorf("listen on http address: %w", err)
	}
	if a := s.opts.BrokerTLSAddr; a != "" {
		if s.brokerTLSL, err = net.Listen("tcp", a); err != nil {
			return fmt.Errorf("listen on broker TLS address: %w", err)
		}
	}
	if a := s.opts.HTTPSAddr; a != "" {
		if s.httpsL, err = net.Listen("tcp", a); err != nil {
			return fmt.Errorf("listen on https address: %w", err)
		}
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.brokerL, s.httpL, s.brokerTLSL, s.httpsL, s.grpcL} {
		if l != nil {
			l.Close()
		}
	}
}

func (s *Server) advertisedBrokerTLSURL() string {
	if s.brokerTLSL == nil {
		return ""
	}
	return "pulsar+ssl://" + net.JoinHostPort(s.opts.AdvertisedAddress, port(s.brokerTLSL))
}

// BrokerTLSURL is the pulsar+ssl:// URL clients on this machine can use; ""
// without a TLS listener.
func (s *Server) BrokerTLSURL() string {
	if s.brokerTLSL == nil {
		return ""
	}
	return "pulsar+ssl://" + net.JoinHostPort(loopbackHost(s.brokerTLSL), port(s.brokerTLSL))
}

// WebTLSURL is the https:// URL of the admin API; "" without HTTPS.
func (s *Server) WebTLSURL() string {
	if s.httpsL == nil {
		return ""
	}
	return "https://" + net.JoinHostPort(loopbackHost(s.httpsL), port(s.httpsL))
}
