package local

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
)

// A restored index checkpoint serves the ledgers it knows; a ledger created
// after it is not served, and its journal records never reach a new ledger.
func TestRestoreIndexCheckpoint(t *testing.T) {
	opts := Options{Dir: t.TempDir(), SegmentSize: 1 << 20}
	s := openStore(t, opts)
	a := openLedger(t, s, "a")
	ledgertest.MustAppend(t, a, []byte("a0"))
	root := filepath.Join(t.TempDir(), "checkpoints", "index")
	cp, err := s.CheckpointIndex(root, 3)
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.MustAppend(t, a, []byte("a1"))
	b := openLedger(t, s, "b")
	ledgertest.MustAppend(t, b, []byte("b0-lost"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	index := filepath.Join(opts.Dir, "index")
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cp, index); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRestoredIndex(index, quietLogger(t)); err != nil {
		t.Fatal(err)
	}

	for range 2 { // and again after a restart
		s = openStore(t, opts)
		if es := ledgertest.ReadAll(t, openLedger(t, s, "a"), 0); len(es) != 2 {
			t.Fatalf("ledger a: %d entries after restore, want 2 (the journal keeps them)", len(es))
		}
		c := openLedger(t, s, "c")
		ledgertest.MustAppend(t, c, []byte("c0"))
		for _, e := range ledgertest.ReadAll(t, c, 0) {
			if bytes.Contains(e.Data, []byte("lost")) {
				t.Fatalf("new ledger serves the lost ledger's record %q", e.Data)
			}
		}
		if s.ledgers["c"].id <= restoredIDGap {
			t.Fatalf("new ledger id %d reuses the range of lost ids", s.ledgers["c"].id)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
