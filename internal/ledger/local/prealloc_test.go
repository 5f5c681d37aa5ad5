package local

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
	"github.com/messagebus/messagebus/internal/ledger/vfs/faultfs"
)

// spareSignal returns an onSpare hook and a function that waits for the
// next spare it reports.
func spareSignal() (hook func(), wait func(t *testing.T)) {
	ch := make(chan struct{}, 64)
	hook = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	wait = func(t *testing.T) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(ledgertest.Timeout):
			t.Fatal("no spare segment was prepared")
		}
	}
	return hook, wait
}

// lines collects strings from any goroutine.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (c *lines) add(s string) {
	c.mu.Lock()
	c.l = append(c.l, s)
	c.mu.Unlock()
}

// take returns what was added since the last take.
func (c *lines) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.l
	c.l = nil
	return out
}

// rollRecorder collects the sources Options.OnRoll reports (OnRoll: add).
type rollRecorder = lines

// logRecorder is a slog.Handler keeping the messages of warnings and errors.
type logRecorder struct{ lines }

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *logRecorder) WithGroup(string) slog.Handler                { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.add(b.String())
	return nil
}

// journalFiles returns the sizes of the segments by sequence number and the
// number of spare files.
func journalFiles(t *testing.T, s *Store) (segs map[uint64]int64, spares int) {
	t.Helper()
	names, err := s.fs.List(s.journalDir)
	if err != nil {
		t.Fatal(err)
	}
	segs = map[uint64]int64{}
	for _, name := range names {
		if strings.HasSuffix(name, spareSuffix) {
			spares++
			continue
		}
		seq, ok := parseSegmentName(name)
		if !ok {
			t.Fatalf("unexpected journal file %s", name)
		}
		f, err := s.fs.Open(segmentName(s.journalDir, seq))
		if err != nil {
			t.Fatal(err)
		}
		segs[seq], _ = f.Size()
		f.Close()
	}
	return segs, spares
}

func lastSegment(segs map[uint64]int64) (seq uint64, size int64) {
	for q, sz := range segs {
		if q >= seq {
			seq, size = q, sz
		}
	}
	return seq, size
}

// The journal moves into preallocated segments, reads and recovers from them
// without a warning, and reuses a spare left by the last run.
func TestPreallocatedSegments(t *testing.T) {
	const segSize = 64 << 10
	hook, waitSpare := spareSignal()
	rec, rolls := &logRecorder{}, &rollRecorder{}
	fs := vfs.NewMem()
	opts := Options{Dir: t.TempDir(), FS: fs, SegmentSize: segSize, Logger: slog.New(rec), onSpare: hook, OnRoll: rolls.add,
		alwaysZeroFill: true}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	var want [][]byte
	appendN := func(n int) {
		for range n {
			p := ledgertest.Payload("t", len(want), 990)
			if id := ledgertest.MustAppend(t, l, p); id != int64(len(want)) {
				t.Fatalf("append got id %d, want %d", id, len(want))
			}
			want = append(want, p)
		}
	}
	// Records of 1,030 bytes. A new store starts in a plain file; past
	// segSize/16 of data (the 4th record) the next segment is prepared, and
	// the journal moves into it at the next append.
	appendN(4)
	if segs, _ := journalFiles(t, s); len(segs) != 1 {
		t.Fatalf("segments before any preparation: %v", segs)
	}
	waitSpare(t)
	appendN(1)
	segs, spares := journalFiles(t, s)
	if seq, size := lastSegment(segs); len(segs) != 2 || size != segSize || spares != 0 {
		t.Fatalf("after the spare was ready: segments %v (active %d of %d bytes), %d spares; want the spare in use", segs, seq, size, spares)
	}
	if got := rolls.take(); !slices.Equal(got, []string{SegmentAppended, SegmentZeroFilled}) {
		t.Fatalf("OnRoll reported %q, want a new file at open, then the zero-filled spare", got)
	}
	// Through several roll-overs, each segment given the time to prepare
	// the next (under load the zero-fill may lag the appends: those
	// segments are appended to, which TestWorthZeroFill covers).
	for range 5 {
		appendN(60)
		kick(s.journal.prepKick) // also when the last roll left little in the active one
		for !s.journal.hasSpare() {
			waitSpare(t)
		}
	}
	segs, _ = journalFiles(t, s)
	full := 0
	for _, size := range segs {
		if size == segSize {
			full++
		}
	}
	if len(segs) < 5 || full < 2 {
		t.Fatalf("after 300 records: segments %v, %d of them preallocated", segs, full)
	}
	check := func(l ledger.Ledger) {
		t.Helper()
		es := ledgertest.ReadAll(t, l, 0)
		if len(es) != len(want) {
			t.Fatalf("read %d entries, want %d", len(es), len(want))
		}
		for i, e := range es {
			if !bytes.Equal(e.Data, want[i]) {
				t.Fatalf("entry %d differs", i)
			}
		}
	}
	check(l)

	// Leave a spare behind: write into the active segment until the next
	// one is prepared, then close.
	appendN(segSize/16/990 + 1)
	for !s.journal.hasSpare() {
		waitSpare(t) // spares the rolls above took signalled too
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if msgs := rec.take(); len(msgs) > 0 {
		t.Fatalf("warnings while writing: %q", msgs)
	}
	if _, spares := journalFiles(t, s); spares != 1 {
		t.Fatalf("%d spares after close, want 1", spares)
	}

	s = openStore(t, opts)
	if msgs := rec.take(); len(msgs) > 0 {
		t.Fatalf("recovery of preallocated segments warned: %q", msgs)
	}
	segs, spares = journalFiles(t, s)
	if _, size := lastSegment(segs); size != segSize || spares != 0 {
		t.Fatalf("after reopen: active segment of %d bytes, %d spares; want the old spare in use", size, spares)
	}
	if got := rolls.take(); len(got) == 0 || got[len(got)-1] != SegmentZeroFilled {
		t.Fatalf("OnRoll reported %q; want the reopen to start in the old zero-filled spare", got)
	}
	l = openLedger(t, s, "t")
	check(l)
	appendN(20)
	check(l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

}

// A segment the janitor would delete becomes the next one; its old records
// are never read back.
func TestRecycledSegments(t *testing.T) {
	const segSize = 16 << 10
	hook, waitSpare := spareSignal()
	rec, rolls := &logRecorder{}, &rollRecorder{}
	opts := Options{Dir: t.TempDir(), FS: vfs.NewMem(), SegmentSize: segSize, Logger: slog.New(rec),
		onSpare: hook, noZeroFill: true, OnRoll: rolls.add}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	for i := range 60 { // records of 1,030 bytes: 15 per segment
		ledgertest.MustAppend(t, l, ledgertest.Payload("old", i, 990))
	}
	const recycledSize = segmentHeaderSize + 15*(recordHeaderSize+990)
	segs, _ := journalFiles(t, s)
	if len(segs) != 4 {
		t.Fatalf("segments before the trim: %v", segs)
	}
	l.Trim(60)
	s.collectSegments()
	waitSpare(t)
	segs, spares := journalFiles(t, s)
	if len(segs) != 1 || spares != 1 {
		t.Fatalf("after trimming everything: segments %v, %d spares; want the active one and one recycled", segs, spares)
	}
	// Smaller records than before, into the recycled segment and past it:
	// it is sealed with old bytes after the new records.
	var want [][]byte
	for i := range 30 {
		p := ledgertest.Payload("new", i, 700)
		if id := ledgertest.MustAppend(t, l, p); id != int64(60+i) {
			t.Fatalf("append got id %d", id)
		}
		want = append(want, p)
		if i == 0 {
			// (The segment before it may already be deleted: it holds only
			// trimmed entries; and the janitor may already have recycled it
			// as the next spare, so the spare count says nothing here.)
			if segs, spares := journalFiles(t, s); func() bool { _, sz := lastSegment(segs); return sz != recycledSize }() {
				t.Fatalf("after the first append: segments %v, %d spares; want the recycled one in use", segs, spares)
			}
			if got := rolls.take(); len(got) == 0 || got[len(got)-1] != SegmentRecycled {
				t.Fatalf("OnRoll reported %q; want the recycled segment last", got)
			}
		}
	}
	check := func(l ledger.Ledger) {
		t.Helper()
		es := ledgertest.ReadAll(t, l, 60)
		if l.FirstEntryID() != 60 || len(es) != len(want) {
			t.Fatalf("first %d, read %d entries, want %d from 60", l.FirstEntryID(), len(es), len(want))
		}
		for i, e := range es {
			if !bytes.Equal(e.Data, want[i]) {
				t.Fatalf("entry %d differs", e.ID)
			}
		}
	}
	check(l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if msgs := rec.take(); len(msgs) > 0 {
		t.Fatalf("recovery with a recycled segment warned: %q", msgs)
	}
	check(openLedger(t, s, "t"))
	s.Close()
}

// Crashes in the middle of syncing a group written into a preallocated
// segment lose no acknowledged entry and never bring back bytes of a torn
// write as an entry.
func TestCrashInPreallocatedSegment(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			hook, waitSpare := spareSignal()
			ffs := faultfs.New(vfs.NewMem(), seed)
			opts := Options{Dir: t.TempDir(), SegmentSize: 32 << 10, Logger: quietLogger(t), onSpare: hook, alwaysZeroFill: true}
			log := newAckLog()
			for round := range 3 {
				opts.FS = ffs.Session()
				s := openStore(t, opts)
				log.verify(t, s, []string{"t"})
				l := openLedger(t, s, "t")
				appendAcked := func(n int) {
					for i := range n {
						p := ledgertest.Payload(fmt.Sprintf("t/%d", round), i, 200+int(seed)*37%700)
						id := ledgertest.MustAppend(t, l, p)
						log.ack(t, "t", id, p)
					}
				}
				if round == 0 {
					appendAcked(15) // past segSize/16: a spare is prepared
					waitSpare(t)
				}
				appendAcked(3) // in the spare from here on
				// Crash inside one of the next syncs, with appends in flight.
				crashed := ffs.Crashed()
				ffs.CrashAfter(faultfs.OpSync, int(seed%3), faultfs.TornTail)
				for i := 0; ; i++ {
					p := ledgertest.Payload(fmt.Sprintf("t/%d/x", round), i, 100+i%500)
					done := make(chan struct{})
					l.Append(p, func(id int64, err error) {
						if err == nil {
							log.ack(t, "t", id, p)
						}
						close(done)
					})
					select {
					case <-crashed:
					case <-done:
						continue
					case <-time.After(ledgertest.Timeout):
						t.Fatal("append neither completed nor crashed")
					}
					break
				}
				s.abandon()
			}
			opts.FS = ffs.Session()
			s := openStore(t, opts)
			log.verify(t, s, []string{"t"})
			s.Close()
		})
	}
}

func TestDisablePreallocation(t *testing.T) {
	const segSize = 16 << 10
	opts := Options{Dir: t.TempDir(), FS: vfs.NewMem(), SegmentSize: segSize, DisablePreallocation: true,
		onSpare: func() { t.Error("a spare was prepared with preallocation disabled") }}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	for i := range 100 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 1000))
	}
	segs, spares := journalFiles(t, s)
	if spares != 0 || len(segs) < 5 {
		t.Fatalf("segments %v, %d spares", segs, spares)
	}
	for seq, size := range segs {
		if size == 0 || size > segSize {
			t.Fatalf("segment %d has %d bytes: not written by appending", seq, size)
		}
	}
	s.Close()
}

func TestWorthZeroFill(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		lastPrep time.Duration
		fullBy   time.Time
		want     bool
	}{
		{0, now.Add(time.Millisecond), true},           // never measured: try
		{10 * time.Millisecond, now, true},             // cheap: always
		{time.Second, time.Time{}, true},               // rate unknown: try
		{time.Second, now.Add(2 * time.Second), true},  // ready in time
		{time.Second, now.Add(time.Second / 2), false}, // writes outrun it
	} {
		var fullBy int64
		if !c.fullBy.IsZero() {
			fullBy = c.fullBy.UnixNano()
		}
		if got := worthZeroFill(now, c.lastPrep, fullBy); got != c.want {
			t.Errorf("worthZeroFill(last %v, full in %v) = %v, want %v", c.lastPrep, c.fullBy.Sub(now), got, c.want)
		}
	}
}
