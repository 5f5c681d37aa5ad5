package server

import (
	"github.com/messagebus/messagebus/internal/ledger"
)

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

// DefaultMinFreeDisk is Options.MinFreeDisk when unset: enough for cursors
// and metadata to be written once sends are refused, on small and large disks.
const DefaultMinFreeDisk = "1%"

// storeHealth returns the store's health problems, nil when it reports none.
func storeHealth(st ledger.Store) func() []string {
	if hr, ok := st.(ledger.HealthReporter); ok {
		return hr.Health
	}
	return nil
}
