package server

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/functions"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/prometheus/client_golang/prometheus"
)

// Functions configures the function worker (internal/functions).
type Functions struct {
	// Disabled turns the worker off; /admin/v3/functions then answers 503.
	Disabled bool
	// MaxMemory caps each instance's memory in bytes (0: 128 MiB).
	MaxMemory int64
	// CallTimeout is the time budget of one call (0: 5s).
	CallTimeout time.Duration
	// BatchSize is the most messages per WebAssembly call (0: 100).
	BatchSize int
	// AuthToken is the worker's token when authentication is on; its role
	// must be allowed to consume the inputs and produce the outputs
	// (a superuser role, typically). Without it the worker does not run
	// on a node with authentication.
	AuthToken string
	// InProcessDisabled makes every WebAssembly instance take the client
	// path (loopback Pulsar client) even when this broker serves its
	// inputs (--function-inprocess=false).
	InProcessDisabled bool
	// ProcessDisabled refuses process functions (runtime PROCESS).
	ProcessDisabled bool
	// ProcessAuthToken is the token process functions are given when
	// authentication is on; without it they are refused on such a node
	// (they never get the worker's own token).
	ProcessAuthToken string
}

// newFunctions makes the worker; it connects to this node's own broker
// listener when started. It returns why it is off, if it is.
func (s *Server) newFunctions(res *meta.Resources, authService *auth.Service, reg prometheus.Registerer) (string, error) {
	f := s.opts.Functions
	if f.Disabled && s.workers == nil {
		// A disabled broker of a cluster still answers the API (workers.go).
		return "functions are disabled on this node (--functions-worker-enabled=false)", nil
	}
	if authService.Enabled() && f.AuthToken == "" {
		return "the functions worker needs a token (--function-auth-token) on a node with authentication", nil
	}
	processOff := ""
	switch {
	case f.ProcessDisabled:
		processOff = "process functions are disabled on this node (--function-process-enabled=false)"
	case authService.Enabled() && f.ProcessAuthToken == "":
		processOff = "process functions need a token for them (--function-process-auth-token) on a node with authentication"
	}
	var inProcess functions.InProcess
	if !f.InProcessDisabled && s.broker != nil {
		inProcess = s.broker
	}
	m, err := functions.NewManager(functions.ManagerConfig{
		InProcess:   inProcess,
		Meta:        s.meta,
		BrokerURL:   s.BrokerURL(),
		AuthToken:   f.AuthToken,
		MaxMemory:   f.MaxMemory,
		CallTimeout: f.CallTimeout,
		BatchSize:   f.BatchSize,
		DedupEnabled: func(ctx context.Context, ns naming.Namespace) (bool, error) {
			p, err := res.Namespace(ctx, ns)
			if errors.Is(err, meta.ErrNotFound) {
				return s.opts.DeduplicationEnabled, nil
			}
			if err != nil {
				return false, err
			}
			return *s.broker.WithDefaults(p).DeduplicationEnabled, nil
		},
		Registerer: reg,
		Logger:     s.log.With("component", "functions"),
		WorkerID:   s.workerID(),
		WebURL:     s.WebURL(),
		// Process functions' executables; rewritten from the metadata
		// store when the node starts.
		WorkDir:          filepath.Join(s.opts.DataDir, "functions"),
		ProcessDisabled:  processOff,
		ProcessAuthToken: f.ProcessAuthToken,
		Placement:        s.placement(),
	})
	if err != nil {
		return "", err
	}
	s.functions = m
	return "", nil
}

// startFunctions runs the stored functions in the background: compiling
// modules takes a while and must not hold up serving.
func (s *Server) startFunctions() {
	if s.functions == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := s.functions.Start(ctx); err != nil {
			s.log.Error("functions worker did not start", "error", err)
		}
	}()
}
