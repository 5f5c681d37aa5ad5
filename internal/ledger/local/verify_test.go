package local

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// Verify reports per ledger every entry recovery loses, those before the
// ledger's first readable entry included, and changes nothing.
func TestVerifyReportsLostEntries(t *testing.T) {
	fs := vfs.Default
	opts := Options{Dir: t.TempDir(), FS: fs, Logger: quietLogger(t), DisablePreallocation: true}
	s := openStore(t, opts)
	seed := s.journal.seed
	for _, name := range []string{"a", "b"} {
		l := openLedger(t, s, name)
		for i := range 5 {
			ledgertest.MustAppend(t, l, ledgertest.Payload(name, i, 100))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	journalDir := filepath.Join(opts.Dir, "journal")
	recs := journalRecords(t, fs, journalDir, seed)
	// The header of a's first record (a's first entry is lost, and a's
	// first readable entry moves up) and the data of b's third.
	var flips []int64
	for _, r := range recs {
		if r.entry == 0 && len(flips) == 0 {
			flips = append(flips, r.off+20) // ledger id: the header no longer checks
		}
		if r.entry == 2 && len(flips) == 1 && r.ledger != recs[0].ledger {
			flips = append(flips, r.off+recordHeaderSize+10)
		}
	}
	if len(flips) != 2 {
		t.Fatalf("records %v: found %d places to damage", recs, len(flips))
	}
	path := segmentName(journalDir, recs[0].seq)
	for _, off := range flips {
		flipBit(t, path, off)
	}
	before := fileSize(t, path)

	r, err := Verify(opts.Dir, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Clean() || r.LostEntries != 2 || r.Entries != 8 || r.Ledgers != 2 {
		t.Fatalf("report %+v, want 2 lost of 10 entries in 2 ledgers", r)
	}
	if r.Lost["a"] != 1 || r.Lost["b"] != 1 {
		t.Fatalf("lost per ledger %v, want a:1 b:1", r.Lost)
	}
	if got := fileSize(t, path); got != before {
		t.Fatalf("verify changed the segment: %d bytes, was %d", got, before)
	}
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
