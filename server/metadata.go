package server

import (
	"context"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/etcd"
	"github.com/prometheus/client_golang/prometheus"
)

// Metadata chooses the metadata store. The zero value is the embedded
// store in <DataDir>/meta.
type Metadata struct {
	// Store is "" (or "embedded") for the embedded store, or
	// etcd://host:port[,host:port...] for etcd.
	Store string
	// Prefix is put before every key in etcd (default /messagebus).
	Prefix string
	// Timeout bounds each etcd request (default 5s).
	Timeout time.Duration
	// Username and Password authenticate to etcd.
	Username, Password string
	// TLSCAFile, TLSCertFile and TLSKeyFile turn on TLS to etcd: the CAs
	// that verify etcd (empty: the system's) and a client certificate.
	TLSEnabled                         bool
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// Wrap, when set, wraps the opened store (tests inject faults with
	// internal/meta/metafault); the server closes what Wrap returns.
	Wrap func(meta.Store) meta.Store
}

// IsEmbedded reports whether the embedded store is chosen.
func (m Metadata) IsEmbedded() bool { return m.Store == "" || m.Store == "embedded" }

// openMetadataStore opens the metadata store, wrapped when Metadata.Wrap
// is set, and checkpoints the embedded one (etcd keeps its own snapshots).
func (s *Server) openMetadataStore(reg prometheus.Registerer) error {
	md, embedded, err := s.openMetadata(reg)
	if err != nil {
		return err
	}
	if s.opts.Metadata.Wrap != nil {
		md = s.opts.Metadata.Wrap(md)
	}
	s.meta = md
	if s.ckpt != nil && embedded != nil {
		s.ckpt.add(StoreMetadata, embedded.Checkpoint, reg)
	}
	return nil
}

// startPolicies starts the one policy source for authorization and the
// broker, kept fresh by a watch until Shutdown.
func (s *Server) startPolicies(res *meta.Resources) *meta.PolicyCache {
	policies := meta.NewPolicyCache(res, s.opts.OperationTimeout)
	var ctx context.Context
	ctx, s.stopPolicies = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		policies.Run(ctx)
	}()
	return policies
}

// openMetadata opens the configured metadata store; embedded is non-nil
// for the embedded one (which has checkpoints).
func (s *Server) openMetadata(reg prometheus.Registerer) (store meta.Store, embedded *meta.Embedded, err error) {
	m := s.opts.Metadata
	if m.IsEmbedded() {
		md, err := meta.OpenEmbedded(storeDir(s.opts.DataDir, StoreMetadata))
		if err != nil {
			return nil, nil, withRestoreHint(err, s.opts.DataDir)
		}
		return md, md, nil
	}
	eps, err := etcd.ParseURL(m.Store)
	if err != nil {
		return nil, nil, err
	}
	opts := etcd.Options{
		Endpoints: eps,
		Prefix:    m.Prefix,
		Timeout:   m.Timeout,
		Username:  m.Username,
		Password:  m.Password,
		Metrics:   etcd.NewMetrics(reg),
		Logger:    s.log.With("component", "meta"),
	}
	if m.TLSEnabled || m.TLSCAFile != "" || m.TLSCertFile != "" {
		if opts.TLS, err = etcd.TLSConfig(m.TLSCAFile, m.TLSCertFile, m.TLSKeyFile); err != nil {
			return nil, nil, err
		}
	}
	st, err := etcd.Open(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata store: %w", err)
	}
	s.etcd = st
	return st, nil, nil
}
