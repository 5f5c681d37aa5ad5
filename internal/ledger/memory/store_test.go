package memory

import (
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
)

func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Harness{
		Storage: func(t *testing.T) func(*testing.T) ledger.Store {
			return func(*testing.T) ledger.Store { return New() }
		},
	})
}
