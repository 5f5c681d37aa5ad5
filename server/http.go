package server

import (
	"net/http"
	"time"

	"github.com/messagebus/messagebus/internal/admin"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/prometheus/client_golang/prometheus"
)

// newHTTP makes the HTTP server of the admin API, /metrics, health, the
// access plane's REST API (when on), pprof (when enabled) and the web
// console (console.go).
func (s *Server) newHTTP(res *meta.Resources, authService *auth.Service, schemas *schema.Registry, gatherer prometheus.Gatherer, functionsOff, connectorsOff string) {
	opts := s.opts
	var accessREST http.Handler
	if s.access != nil {
		accessREST = s.access.HTTPHandler()
	}
	var fns admin.Functions
	if s.functions != nil { // a nil *Manager must not become a non-nil interface
		fns = s.functions
	}
	var conns admin.Connectors
	if s.connectors != nil {
		conns = s.connectors
	}
	s.http = &http.Server{
		Handler: withConsole(admin.New(admin.Config{
			ClusterName:                opts.ClusterName,
			BrokerURL:                  s.advertisedBrokerURL(),
			WebURL:                     s.advertisedWebURL(),
			Logger:                     opts.Logger.With("component", "admin"),
			Gatherer:                   gatherer,
			Pprof:                      opts.EnablePprof,
			Access:                     accessREST,
			Ready:                      s.ready.Load,
			Health:                     storeHealth(s.store),
			Broker:                     s.broker,
			Auth:                       authService,
			RefusePlaintextCredentials: opts.Security.RefusePlaintextCredentials,
			BrokerURLTLS:               s.advertisedBrokerTLSURL(),
			WebURLTLS:                  s.advertisedHTTPSURL(),
			Listeners:                  s.listeners,
			Schemas:                    schemas,
			Functions:                  fns,
			FunctionsUnavailable:       functionsOff,
			Cluster:                    s.adminCluster(),
			Connectors:                 conns,
			ConnectorsUnavailable:      connectorsOff,
		}, res), s.consoleHandler(), opts.Security.RefusePlaintextCredentials),
		// Slow or idle clients must not hold connections forever; bodies are
		// small (policies, access requests) except the pprof trace, which
		// writes, not reads.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// adminCluster is cluster mode's admin hooks, nil (not a typed nil) standalone.
func (s *Server) adminCluster() admin.Cluster {
	if s.owner == nil {
		return nil
	}
	return adminCluster{s.owner}
}
