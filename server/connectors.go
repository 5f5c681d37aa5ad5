package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
	// Connector packages register their types from init.
	_ "github.com/messagebus/messagebus/internal/connectors/dynamodb"
	_ "github.com/messagebus/messagebus/internal/connectors/kinesis"
	_ "github.com/messagebus/messagebus/internal/connectors/lake"
	"github.com/prometheus/client_golang/prometheus"
)

// Connectors configures the connectors worker (internal/connectors). Its
// client uses the function worker's token (Functions.AuthToken) when
// authentication is on.
type Connectors struct {
	// Disabled turns the worker off; /admin/v3/sources and /sinks then
	// answer 503.
	Disabled bool
}

// newConnectors makes the worker; it returns why it is off, if it is.
func (s *Server) newConnectors(authService *auth.Service, schemas *schema.Registry, reg prometheus.Registerer) (string, error) {
	if s.opts.Connectors.Disabled && s.workers == nil {
		return "connectors are disabled on this node (--connectors-enabled=false)", nil
	}
	token := s.opts.Functions.AuthToken
	if authService.Enabled() && token == "" {
		return "the connectors worker needs the worker token (--function-auth-token) on a node with authentication", nil
	}
	cfg := connectors.ManagerConfig{
		Meta:       s.meta,
		BrokerURL:  s.BrokerURL(),
		AuthToken:  token,
		Registerer: reg,
		Logger:     s.log.With("component", "connectors"),
		WorkerID:   s.workerID(),
		Placement:  s.placement(),
		Schemas:    connectorSchemas{schemas},
	}
	// vault:<path>#<field> secret references read the access plane's Vault.
	if a := s.opts.Access; a.VaultAddr != "" {
		if a.VaultToken == "" {
			return "", errors.New("connectors: --vault-addr needs a Vault token (MB_VAULT_TOKEN or --vault-token-file)")
		}
		vc, err := vault.New(vault.Config{Address: a.VaultAddr, Token: a.VaultToken, Mount: a.VaultMount})
		if err != nil {
			return "", err
		}
		cfg.Vault = vc
	}
	m, err := connectors.NewManager(cfg)
	if err != nil {
		return "", err
	}
	s.connectors = m
	return "", nil
}

// startConnectors runs the stored connectors in the background.
func (s *Server) startConnectors() {
	if s.connectors == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.connectors.Start(ctx); err != nil {
			s.log.Error("connectors worker did not start", "error", err)
		}
	}()
}

// connectorSchemas gives sinks the registry's schema versions.
type connectorSchemas struct{ r *schema.Registry }

func (c connectorSchemas) SchemaVersion(ctx context.Context, topic string, version []byte) (connectors.TopicSchema, error) {
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return connectors.TopicSchema{}, err
	}
	n, err := schema.DecodeVersion(version)
	if err != nil {
		return connectors.TopicSchema{}, err
	}
	rec, err := c.r.Version(ctx, t, n)
	if err != nil {
		return connectors.TopicSchema{}, fmt.Errorf("schema version %d of %s: %w", n, topic, err)
	}
	return connectors.TopicSchema{Type: rec.Type, Definition: rec.Data}, nil
}
