package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Authentication and authorization of a connection.
//
//	CONNECT credentials: auth_method_name token, basic or tls (the client
//	  certificate), or none (the anonymous role); refused with ERROR
//	  AuthenticationError, also for any credentials on a plaintext listener
//	  under --refuse-plaintext-credentials.
//	AUTH_CHALLENGE (36): sent when a token expires, to clients that set
//	  feature_flags.supports_auth_refresh; others are disconnected.
//	AUTH_RESPONSE (37): fresh credentials for the same role, within
//	  AuthRefreshTimeout; anything else is ERROR AuthenticationError and a
//	  close.
//	Authorization of LOOKUP, PARTITIONED_METADATA, PRODUCER, SUBSCRIBE and
//	  GET_TOPICS_OF_NAMESPACE: AuthorizationError when refused,
//	  ServiceNotReady (retriable) when the grants cannot be read.

// connAuth is a connection's authentication state. Credentials that expire
// are challenged at expiry (AUTH_CHALLENGE); a client that does not answer
// with fresh, valid credentials for the same role within
// Config.AuthRefreshTimeout is disconnected, so an expired token never keeps
// a connection alive.
type connAuth struct {
	principal       auth.Principal
	supportsRefresh bool
	timer           *time.Timer
	challenged      bool
}

// authenticate checks CONNECT's credentials. It answers ERROR
// (AuthenticationError) and returns an error, closing the connection, when
// they are refused.
func (c *conn) authenticate(cmd *pb.CommandConnect) error {
	a := c.b.cfg.Auth
	if c.b.cfg.RefusePlaintextCreds && !c.isTLS() && (cmd.GetAuthMethodName() != "" || len(cmd.GetAuthData()) > 0) {
		c.b.metrics.authFailures.WithLabelValues(methodLabel(cmd.GetAuthMethodName())).Inc()
		c.log.Info("credentials over plaintext refused", "method", cmd.GetAuthMethodName())
		err := errors.New(errPlaintextCredentials)
		c.writeCommand(errorCommand(0, pb.ServerError_AuthenticationError, err.Error()))
		return err
	}
	if !a.Enabled() {
		return nil
	}
	p, err := a.Authenticate(cmd.GetAuthMethodName(), cmd.GetAuthData(), c.peerCertificates())
	if err != nil {
		c.b.metrics.authFailures.WithLabelValues(methodLabel(cmd.GetAuthMethodName())).Inc()
		c.log.Info("authentication failed", "method", cmd.GetAuthMethodName(), "err", err)
		c.writeCommand(errorCommand(0, pb.ServerError_AuthenticationError, err.Error()))
		return err
	}
	c.b.metrics.authSuccesses.WithLabelValues(p.Method).Inc()
	c.amu.Lock()
	c.auth.principal = p
	c.auth.supportsRefresh = cmd.GetFeatureFlags().GetSupportsAuthRefresh()
	c.scheduleExpiryLocked()
	c.amu.Unlock()
	return nil
}

// errPlaintextCredentials refuses credentials sent on a plaintext connection
// while Config.RefusePlaintextCreds is on.
const errPlaintextCredentials = "credentials are refused over plaintext on this server (--refuse-plaintext-credentials): use pulsar+ssl:// (--broker-tls-addr)"

func (c *conn) isTLS() bool {
	_, ok := c.nc.(*tls.Conn)
	return ok
}

// peerCertificates returns the verified client certificates of a TLS
// connection (the handshake has completed by the time CONNECT is read).
func (c *conn) peerCertificates() []*x509.Certificate {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.ConnectionState().PeerCertificates
	}
	return nil
}

// role is the connection's authenticated role ("" when auth is off).
func (c *conn) role() string {
	c.amu.Lock()
	defer c.amu.Unlock()
	return c.auth.principal.Role
}

// scheduleExpiryLocked arms the timer for the principal's expiry. Called
// with c.amu held.
func (c *conn) scheduleExpiryLocked() {
	if c.auth.timer != nil {
		c.auth.timer.Stop()
		c.auth.timer = nil
	}
	c.auth.challenged = false
	exp := c.auth.principal.ExpiresAt
	if exp.IsZero() {
		return
	}
	c.auth.timer = time.AfterFunc(time.Until(exp), c.credentialsExpired)
}

// credentialsExpired challenges a client that can refresh its token and
// disconnects any other.
func (c *conn) credentialsExpired() {
	c.amu.Lock()
	p := c.auth.principal
	if !c.b.cfg.Auth.Expired(p) { // refreshed meanwhile
		c.amu.Unlock()
		return
	}
	if !c.auth.supportsRefresh || p.Method != auth.MethodToken {
		c.amu.Unlock()
		c.log.Info("credentials expired; disconnecting", "role", p.Role)
		c.stopReading()
		return
	}
	c.auth.challenged = true
	c.auth.timer = time.AfterFunc(c.b.cfg.AuthRefreshTimeout, c.refreshTimedOut)
	c.amu.Unlock()
	c.log.Debug("credentials expired; sending AUTH_CHALLENGE")
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_AUTH_CHALLENGE.Enum(),
		AuthChallenge: &pb.CommandAuthChallenge{
			ServerVersion:   proto.String(serverVersion),
			ProtocolVersion: proto.Int32(c.protocolVersion),
			// Pulsar's marker asking the client for fresh credentials.
			Challenge: &pb.AuthData{AuthMethodName: proto.String(p.Method), AuthData: []byte("refresh")},
		},
	})
}

func (c *conn) refreshTimedOut() {
	c.amu.Lock()
	pending := c.auth.challenged
	c.amu.Unlock()
	if pending {
		c.log.Info("no fresh credentials after AUTH_CHALLENGE; disconnecting")
		c.stopReading()
	}
}

// handleAuthResponse accepts refreshed credentials. They must be valid and
// name the same role; anything else closes the connection.
func (c *conn) handleAuthResponse(cmd *pb.CommandAuthResponse) error {
	a := c.b.cfg.Auth
	if !a.Enabled() {
		return nil
	}
	resp := cmd.GetResponse()
	p, err := a.Authenticate(resp.GetAuthMethodName(), resp.GetAuthData(), c.peerCertificates())
	if err != nil {
		c.b.metrics.authFailures.WithLabelValues(methodLabel(resp.GetAuthMethodName())).Inc()
		c.writeCommand(errorCommand(0, pb.ServerError_AuthenticationError, err.Error()))
		return fmt.Errorf("auth refresh: %w", err)
	}
	c.amu.Lock()
	defer c.amu.Unlock()
	if p.Role != c.auth.principal.Role {
		c.writeCommand(errorCommand(0, pb.ServerError_AuthenticationError, "refreshed credentials are for another role"))
		return errors.New("auth refresh: role changed")
	}
	c.b.metrics.authSuccesses.WithLabelValues(p.Method).Inc()
	c.auth.principal = p
	c.scheduleExpiryLocked()
	return nil
}

// stopAuthTimer is called when the connection ends.
func (c *conn) stopAuthTimer() {
	c.amu.Lock()
	if c.auth.timer != nil {
		c.auth.timer.Stop()
	}
	c.auth.challenged = false
	c.amu.Unlock()
}

// methodLabel bounds the label values a client can create.
func methodLabel(m string) string {
	switch m {
	case auth.MethodToken, auth.MethodTLS, auth.MethodBasic:
		return m
	case "", "none":
		return auth.MethodAnonymous
	}
	return "other"
}

// authorize runs an authorization check for the connection's role. Lookups
// must not leak whether a topic exists, so the check comes before any.
func (c *conn) authorize(ctx context.Context, check func(ctx context.Context, a *auth.Service, role string) (bool, error), what string) error {
	a := c.b.cfg.Auth
	if !a.Enabled() {
		return nil
	}
	role := c.role()
	ok, err := check(ctx, a, role)
	if err != nil {
		// The grants could not be read: not a refusal, the client retries.
		return requestError(ctx, c.b.metadataError("authorization", fmt.Errorf("authorization check failed: %w", err)))
	}
	if !ok {
		return newError(pb.ServerError_AuthorizationError, fmt.Sprintf("role %q is not allowed to %s", role, what))
	}
	return nil
}

func (c *conn) authorizeLookup(ctx context.Context, t naming.Topic) error {
	return c.authorize(ctx, func(ctx context.Context, a *auth.Service, role string) (bool, error) {
		return a.CanLookup(ctx, role, t)
	}, "look up "+t.String())
}

func (c *conn) authorizeProduce(ctx context.Context, t naming.Topic) error {
	return c.authorize(ctx, func(ctx context.Context, a *auth.Service, role string) (bool, error) {
		return a.CanProduce(ctx, role, t)
	}, "produce to "+t.String())
}

func (c *conn) authorizeConsume(ctx context.Context, t naming.Topic, sub string) error {
	return c.authorize(ctx, func(ctx context.Context, a *auth.Service, role string) (bool, error) {
		return a.CanConsume(ctx, role, t, sub)
	}, "consume from "+t.String())
}

func (c *conn) authorizeListTopics(ctx context.Context, ns naming.Namespace) error {
	return c.authorize(ctx, func(ctx context.Context, a *auth.Service, role string) (bool, error) {
		return a.CanListTopics(ctx, role, ns)
	}, "list the topics of "+ns.String())
}

// AuthEnabled reports whether clients must authenticate.
func (b *Broker) AuthEnabled() bool { return b.cfg.Auth.Enabled() }
