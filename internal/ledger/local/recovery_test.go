package local

import (
	"bytes"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// rewrite applies fn to the content of a file behind the store's back.
func rewrite(t *testing.T, fs vfs.FS, name string, fn func([]byte) []byte) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && size > 0 {
		t.Fatal(err)
	}
	b = fn(b)
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryTruncatesTornTail(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{Dir: t.TempDir(), FS: fs}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	for i := range 10 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 100))
	}
	s.Close()
	name := segmentName(s.journalDir, 1)
	var good int
	rewrite(t, fs, name, func(b []byte) []byte {
		good = len(b)
		// A record header claiming more data than there is, then garbage.
		data := bytes.Repeat([]byte{7}, 100)
		torn := appendRecord(nil, s.journal.seed, true, 1, l.ID(), 10, data, dataChecksum(data))
		return append(b, torn[:60]...)
	})
	s = openStore(t, opts)
	defer s.Close()
	l = openLedger(t, s, "t")
	if l.LastEntryID() != 9 || len(ledgertest.ReadAll(t, l, 0)) != 10 {
		t.Fatalf("after torn tail: last %d", l.LastEntryID())
	}
	f, _ := fs.Open(name)
	size, _ := f.Size()
	f.Close()
	if size != int64(good) {
		t.Fatalf("segment is %d bytes after recovery, want the %d valid ones", size, good)
	}
	if id := ledgertest.MustAppend(t, l, []byte("next")); id != 10 {
		t.Fatalf("append after recovery got id %d", id)
	}
}

// TestRecoveryCorruptOlderSegment: damage inside a sealed segment loses the
// rest of that segment only; the lost entries are never returned, later
// segments are still read and appends continue.
func TestRecoveryCorruptOlderSegment(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{Dir: t.TempDir(), FS: fs, SegmentSize: 2048}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	for i := range 60 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 100))
	}
	x := l.(*handle).l
	x.mu.Lock()
	seq, loc, _ := x.idx.get(20, 0)
	lastSeq, _, _ := x.idx.get(59, 0)
	x.mu.Unlock()
	if seq == lastSeq {
		t.Fatal("entry 20 is not in a sealed segment")
	}
	s.Close()
	rewrite(t, fs, segmentName(s.journalDir, seq), func(b []byte) []byte {
		b[int(loc.off)+recordHeaderSize+5] ^= 1
		return b
	})

	s = openStore(t, opts)
	defer s.Close()
	l = openLedger(t, s, "t")
	es := ledgertest.ReadAll(t, l, 0)
	seen := map[int64]bool{}
	for _, e := range es {
		if !bytes.Equal(e.Data, ledgertest.Payload("t", int(e.ID), 100)) {
			t.Fatalf("entry %d returned with wrong data", e.ID)
		}
		seen[e.ID] = true
	}
	if seen[20] || !seen[19] || !seen[59] || l.LastEntryID() != 59 {
		t.Fatalf("recovered ids: 19 %v 20 %v 59 %v, last %d", seen[19], seen[20], seen[59], l.LastEntryID())
	}
	if l.Entries() != int64(len(es)) {
		t.Fatalf("Entries %d, readable %d", l.Entries(), len(es))
	}
	if id := ledgertest.MustAppend(t, l, []byte("next")); id != 60 {
		t.Fatalf("append after recovery got id %d", id)
	}
}

// TestRecoveryNeverReusesAckedIDs: when the last entries of a ledger are lost
// to damage, the ids a cursor acknowledged are not handed out again.
func TestRecoveryNeverReusesAckedIDs(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{Dir: t.TempDir(), FS: fs, SegmentSize: 2048}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	other := openLedger(t, s, "other")
	for i := range 15 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 100))
	}
	for i := range 40 { // later segments hold only other's entries
		ledgertest.MustAppend(t, other, ledgertest.Payload("other", i, 100))
	}
	c := ledger.NewCursorState(9)
	c.Ack(14)
	l.SaveCursor("sub", c)
	x := l.(*handle).l
	s.Close()
	// Entries 10-14 overwritten whole: nothing in the journal says they existed.
	for id := int64(10); id < 15; id++ {
		x.mu.Lock()
		seq, loc, _ := x.idx.get(id, 0)
		x.mu.Unlock()
		rewrite(t, fs, segmentName(s.journalDir, seq), func(b []byte) []byte {
			for i := int(loc.off); i < int(loc.off)+recordHeaderSize+int(loc.size); i++ {
				b[i] = 0xaa
			}
			return b
		})
	}
	s = openStore(t, opts)
	defer s.Close()
	l = openLedger(t, s, "t")
	if l.LastEntryID() != 14 || l.Entries() != 10 {
		t.Fatalf("last %d entries %d, want 14 and 10", l.LastEntryID(), l.Entries())
	}
	if id := ledgertest.MustAppend(t, l, []byte("next")); id != 15 {
		t.Fatalf("append got id %d, want 15", id)
	}
	if es := ledgertest.ReadAll(t, l, 10); len(es) != 1 || es[0].ID != 15 {
		t.Fatalf("read past the lost entries: %v", es)
	}
}
