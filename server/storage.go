package server

import (
	"fmt"
	"path/filepath"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMinFreeDisk is Options.MinFreeDisk when unset: enough for cursors
// and metadata to be written once sends are refused, on small and large disks.
const DefaultMinFreeDisk = "1%"

// openStorage opens the ledger store (the journal in <DataDir>/ledger, or
// memory) and the delayed-delivery index. The journal's metrics are
// registered either way, so that dashboards see the same series.
func (s *Server) openStorage(reg prometheus.Registerer) error {
	opts := s.opts
	metrics := local.NewMetrics(broker.LatencyBuckets)
	reg.MustRegister(metrics)
	minFree, err := local.ParseDiskReserve(opts.MinFreeDisk)
	if err != nil {
		return fmt.Errorf("min free disk: %w", err)
	}
	if opts.Cluster != nil {
		return nil // cluster.go opens the store once the listeners are bound
	}
	if opts.InMemory {
		s.store = memory.New()
		return nil
	}
	st, err := local.Open(local.Options{
		Dir:                  filepath.Join(opts.DataDir, "ledger"),
		SegmentSize:          opts.JournalSegmentSize,
		DisablePreallocation: opts.NoJournalPreallocation,
		MinFreeDisk:          minFree,
		CacheBytes:           opts.CacheBytes,
		CacheTotalBytes:      opts.CacheTotalBytes,
		Logger:               opts.Logger.With("component", "ledger"),
		Metrics:              metrics,
	})
	if err != nil {
		return fmt.Errorf("open storage: %w", withRestoreHint(err, opts.DataDir))
	}
	if s.store, err = s.withOffload(st, reg); err != nil { // offload.go
		st.Close()
		return err
	}
	if s.ckpt != nil {
		s.ckpt.add(StoreIndex, st.CheckpointIndex, reg)
	}
	ds, err := delayed.Open(storeDir(opts.DataDir, StoreDelayed), delayed.Options{
		Logger: opts.Logger.With("component", "delayed"),
	})
	if err != nil {
		return withRestoreHint(err, opts.DataDir)
	}
	s.delayed = ds
	return nil
}

func (s *Server) closeStores() error {
	if s.ckpt != nil {
		s.ckpt.halt()
		s.ckpt = nil
	}
	var err error
	if s.delayed != nil {
		err = s.delayed.Close()
		s.delayed = nil
	}
	if s.store != nil {
		if serr := s.store.Close(); serr != nil && err == nil {
			err = serr
		}
		s.store = nil
	}
	if s.meta != nil {
		if merr := s.meta.Close(); merr != nil && err == nil {
			err = merr
		}
		s.meta = nil
	}
	return err
}

// storeHealth returns the store's health problems, nil when it reports none.
func storeHealth(st ledger.Store) func() []string {
	if hr, ok := st.(ledger.HealthReporter); ok {
		return hr.Health
	}
	return nil
}
