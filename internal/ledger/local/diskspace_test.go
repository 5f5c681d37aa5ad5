package local

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
	"github.com/messagebus/messagebus/internal/ledger/vfs/faultfs"
)

// diskEnv fakes the file system's free space (statfs) and reports the
// journal's disk-full transitions.
type diskEnv struct {
	free   atomic.Uint64
	total  uint64
	states chan bool
	skips  chan string
}

func newDiskEnv(free uint64) *diskEnv {
	e := &diskEnv{total: 1 << 30, states: make(chan bool, 1024), skips: make(chan string, 1024)}
	e.free.Store(free)
	return e
}

func (e *diskEnv) options(o Options) Options {
	o.diskSpace = func() (uint64, uint64, error) { return e.free.Load(), e.total, nil }
	o.diskRetry = time.Millisecond
	o.onDiskState = func(full bool) {
		select {
		case e.states <- full:
		default:
		}
	}
	o.OnPreallocSkipped = func(reason string) {
		select {
		case e.skips <- reason:
		default:
		}
	}
	return o
}

// waitState waits for the journal to enter (full) or leave the disk-full state.
func (e *diskEnv) waitState(t *testing.T, full bool) {
	t.Helper()
	deadline := time.After(ledgertest.Timeout)
	for {
		select {
		case got := <-e.states:
			if got == full {
				return
			}
		case <-deadline:
			t.Fatalf("the journal never reported disk full = %v", full)
		}
	}
}

// acked is what the test was told is durable, per ledger.
type acked struct {
	mu sync.Mutex
	m  map[string]map[int64][]byte
}

func (a *acked) add(name string, id int64, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]map[int64][]byte{}
	}
	if a.m[name] == nil {
		a.m[name] = map[int64][]byte{}
	}
	a.m[name][id] = data
}

// verify reads l whole: every acknowledged entry is there, unchanged, ids
// increase, Entries agrees. strict: nothing else is there (in the running
// store); otherwise an entry nobody acknowledged may be one whose append
// failed but whose record reached the disk, never anything else.
func (a *acked) verify(t *testing.T, l ledger.Ledger, strict bool) {
	t.Helper()
	a.mu.Lock()
	want := a.m[l.Name()]
	a.mu.Unlock()
	es := ledgertest.ReadAll(t, l, l.FirstEntryID())
	if int64(len(es)) != l.Entries() {
		t.Fatalf("%s: read %d entries, Entries() = %d", l.Name(), len(es), l.Entries())
	}
	seen := 0
	for i, e := range es {
		if i > 0 && e.ID <= es[i-1].ID {
			t.Fatalf("%s: id %d after %d", l.Name(), e.ID, es[i-1].ID)
		}
		data, ok := want[e.ID]
		switch {
		case ok && !bytes.Equal(data, e.Data):
			t.Fatalf("%s: acknowledged entry %d changed", l.Name(), e.ID)
		case ok:
			seen++
		case strict:
			t.Fatalf("%s: entry %d read, never acknowledged", l.Name(), e.ID)
		default:
			if err := checkPayload(e.Data); err != nil {
				t.Fatalf("%s: entry %d: %v", l.Name(), e.ID, err)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("%s: %d of %d acknowledged entries readable\n", l.Name(), seen, len(want))
	}
}

// TestDiskFullRecovers: a write or sync failing for lack of space fails its
// group and the appends queued behind it, later appends fail at once with the
// disk-full error while the disk stays full, reads go on, and once space is
// back appends succeed again without a reopen. Nothing acknowledged is lost,
// across a reopen and a crash, and nothing unacknowledged is read as data.
func TestDiskFullRecovers(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpWrite, faultfs.OpSync} {
		for _, prealloc := range []bool{true, false} {
			for _, persistent := range []bool{false, true} {
				name := fmt.Sprintf("%v/prealloc=%v/persistent=%v", op, prealloc, persistent)
				t.Run(name, func(t *testing.T) { diskFullRecovers(t, op, prealloc, persistent) })
			}
		}
	}
}

func diskFullRecovers(t *testing.T, op faultfs.Op, prealloc, persistent bool) {
	ffs := faultfs.New(vfs.NewMem(), 7)
	env := newDiskEnv(1 << 30)
	rec := &logRecorder{}
	opts := env.options(Options{
		Dir: t.TempDir(), FS: ffs.Session(), SegmentSize: 8 << 10, Logger: slog.New(rec),
		DisablePreallocation: !prealloc, alwaysZeroFill: prealloc,
	})
	s := openStore(t, opts)
	ls := []ledger.Ledger{openLedger(t, s, "a"), openLedger(t, s, "b")}
	var log acked
	for i := range 20 {
		for _, l := range ls {
			data := ledgertest.Payload(l.Name(), i, 200)
			log.add(l.Name(), ledgertest.MustAppend(t, l, data), data)
		}
	}

	// The disk fills: one write or sync fails (persistent: every one until
	// the space is back), and statfs shows no space.
	env.free.Store(0)
	if persistent {
		ffs.FailAfter(op, 2, syscall.ENOSPC)
	} else {
		ffs.FailTimes(op, 2, 1, syscall.ENOSPC)
	}
	var (
		mu     sync.Mutex
		failed = map[string]bool{}
		wg     sync.WaitGroup
	)
	const n = 200
	wg.Add(len(ls) * n)
	for _, l := range ls {
		go func() {
			for i := range n {
				data := ledgertest.Payload(l.Name()+"/load", i, 300)
				l.Append(data, func(id int64, err error) {
					defer wg.Done()
					mu.Lock() // callbacks run in append order
					defer mu.Unlock()
					switch {
					case err == nil && failed[l.Name()]:
						t.Errorf("%s: append succeeded after an earlier one failed, the disk still full", l.Name())
					case err == nil:
						log.add(l.Name(), id, data)
					case !errors.Is(err, ledger.ErrDiskFull) || !strings.HasPrefix(err.Error(), "disk full: "):
						t.Errorf("append failed with %v, want the disk-full error", err)
					default:
						failed[l.Name()] = true
					}
				})
			}
		}()
	}
	wg.Wait()
	if !failed["a"] && !failed["b"] {
		t.Fatal("no append failed")
	}
	env.waitState(t, true)
	if h := s.Health(); len(h) != 1 || !strings.HasPrefix(h[0], "disk full: ") || !s.DiskFull() {
		t.Fatalf("Health() = %q, DiskFull() = %v while full", h, s.DiskFull())
	}
	if r := ledgertest.Wait(t, ledgertest.AppendAsync(ls[0], []byte("x"))); !errors.Is(r.Err, ledger.ErrDiskFull) {
		t.Fatalf("append while full: %+v", r)
	}
	for _, l := range ls { // reads go on
		log.verify(t, l, true)
	}

	// Space is back: appends succeed again, without a reopen.
	ffs.ClearFaults()
	env.free.Store(1 << 30)
	env.waitState(t, false)
	if h := s.Health(); len(h) != 0 || s.DiskFull() {
		t.Fatalf("Health() = %q, DiskFull() = %v after recovery", h, s.DiskFull())
	}
	for i := range 30 {
		for _, l := range ls {
			data := ledgertest.Payload(l.Name()+"/after", i, 300)
			log.add(l.Name(), ledgertest.MustAppend(t, l, data), data)
		}
	}
	for _, l := range ls {
		log.verify(t, l, true)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen, then crash and recover: still everything acknowledged.
	rec.take()
	s = openStore(t, opts)
	for _, l := range ls {
		log.verify(t, openLedger(t, s, l.Name()), false)
	}
	if !persistent {
		// The failed group's bytes were cut off where it began: no record of
		// a segment reads as damaged.
		for _, line := range rec.take() {
			if strings.Contains(line, "corrupt") {
				t.Errorf("recovery after a sealed failure: %s", line)
			}
		}
	}
	for i := range 10 {
		l := openLedger(t, s, "a")
		data := ledgertest.Payload("a/reopened", i, 300)
		log.add("a", ledgertest.MustAppend(t, l, data), data)
	}
	if err := ffs.Crash(faultfs.TornTail); err != nil {
		t.Fatal(err)
	}
	s.abandon()
	opts.FS = ffs.Session()
	s = openStore(t, opts)
	defer s.Close()
	for _, l := range ls {
		log.verify(t, openLedger(t, s, l.Name()), false)
	}
}

// TestDiskFullIDsNotReused: the ids of a failed group are lost, not handed
// out again, and Read skips them; a trim across them works.
func TestDiskFullIDsNotReused(t *testing.T) {
	ffs := faultfs.New(vfs.NewMem(), 3)
	env := newDiskEnv(1 << 30)
	opts := env.options(Options{Dir: t.TempDir(), FS: ffs, DisablePreallocation: true})
	s := openStore(t, opts)
	defer func() { s.Close() }()
	l := openLedger(t, s, "t")
	for i := range 3 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 50))
	}
	env.free.Store(0)
	ffs.FailTimes(faultfs.OpWrite, 0, 1, syscall.ENOSPC)
	if r := ledgertest.Wait(t, ledgertest.AppendAsync(l, ledgertest.Payload("t", 3, 50))); !errors.Is(r.Err, ledger.ErrDiskFull) {
		t.Fatalf("append on a full disk: %+v", r)
	}
	env.waitState(t, true)
	env.free.Store(1 << 30)
	env.waitState(t, false)
	id := ledgertest.MustAppend(t, l, ledgertest.Payload("t", 4, 50))
	if id != 4 {
		t.Fatalf("append after recovery got id %d, want 4 (id 3 failed and is not reused)", id)
	}
	// After a restart the refused id is still skipped, and its absence
	// from the journal is not taken for damage.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.FS = ffs.Session()
	s = openStore(t, opts)
	l = openLedger(t, s, "t")
	if d := s.Damage(); d != (Damage{}) || len(s.Health()) != 0 {
		t.Fatalf("after a restart: damage %+v, health %q", d, s.Health())
	}
	es := ledgertest.ReadAll(t, l, 0)
	if len(es) != 4 || es[2].ID != 2 || es[3].ID != 4 || l.LastEntryID() != 4 || l.Entries() != 4 {
		t.Fatalf("read %d entries (last id %d), LastEntryID %d, Entries %d", len(es), es[len(es)-1].ID, l.LastEntryID(), l.Entries())
	}
	l.Trim(4)
	if es := ledgertest.ReadAll(t, l, l.FirstEntryID()); len(es) != 1 || es[0].ID != 4 || l.Entries() != 1 {
		t.Fatalf("after trim: %v, Entries %d", es, l.Entries())
	}
	// A gap right at the start of an empty (trimmed) ledger.
	l.Trim(5)
	env.free.Store(0)
	ffs.FailTimes(faultfs.OpWrite, 0, 1, syscall.ENOSPC)
	ledgertest.Wait(t, ledgertest.AppendAsync(l, []byte("lost")))
	env.waitState(t, true)
	env.free.Store(1 << 30)
	env.waitState(t, false)
	if id := ledgertest.MustAppend(t, l, []byte("kept")); id != 6 {
		t.Fatalf("id %d, want 6", id)
	}
	if es := ledgertest.ReadAll(t, l, l.FirstEntryID()); len(es) != 1 || string(es[0].Data) != "kept" {
		t.Fatalf("read %v from %d", es, l.FirstEntryID())
	}
}

// TestMinFreeDisk: below Options.MinFreeDisk appends fail at once with the
// disk-full error (and take no id), cursors are still saved, and above it
// appends are accepted again.
func TestMinFreeDisk(t *testing.T) {
	for _, reserve := range []DiskReserve{{Bytes: 10 << 20}, {Percent: 1}} {
		t.Run(reserve.String(), func(t *testing.T) {
			env := newDiskEnv(100 << 20)
			opts := env.options(Options{Dir: t.TempDir(), FS: vfs.NewMem(), MinFreeDisk: reserve})
			s := openStore(t, opts)
			defer s.Close()
			l := openLedger(t, s, "t")
			ledgertest.MustAppend(t, l, []byte("0"))
			env.free.Store(5 << 20)
			env.waitState(t, true)
			r := ledgertest.Wait(t, ledgertest.AppendAsync(l, []byte("refused")))
			if !errors.Is(r.Err, ledger.ErrDiskFull) || !strings.Contains(r.Err.Error(), "below the minimum") {
				t.Fatalf("append below the minimum free space: %+v", r)
			}
			h := s.Health()
			if len(h) != 1 || !strings.HasPrefix(h[0], "disk full: 5.0 MiB free in ") || !strings.Contains(h[0], reserve.String()) {
				t.Fatalf("Health() = %q", h)
			}
			st := ledger.NewCursorState(0)
			if err := l.SaveCursor("sub", st); err != nil {
				t.Fatal(err)
			}
			if err := s.flush(); err != nil {
				t.Fatalf("cursor flush while appends are refused: %v", err)
			}
			env.free.Store(100 << 20)
			env.waitState(t, false)
			if id := ledgertest.MustAppend(t, l, []byte("1")); id != 1 {
				t.Fatalf("append after recovery got id %d, want 1: refused appends take no id", id)
			}
			if len(s.Health()) != 0 {
				t.Fatalf("Health() = %q after recovery", s.Health())
			}
		})
	}
}

// TestMinFreeDiskAtOpen: a store opened on a full disk refuses appends
// from the start.
func TestMinFreeDiskAtOpen(t *testing.T) {
	env := newDiskEnv(1 << 20)
	s := openStore(t, env.options(Options{Dir: t.TempDir(), FS: vfs.NewMem(), MinFreeDisk: DiskReserve{Bytes: 2 << 20}}))
	defer s.Close()
	if r := ledgertest.Wait(t, ledgertest.AppendAsync(openLedger(t, s, "t"), []byte("x"))); !errors.Is(r.Err, ledger.ErrDiskFull) {
		t.Fatalf("append: %+v", r)
	}
}

// TestPreallocSkippedLowDisk: the preparer does not zero-fill a spare that
// would leave less than the reserve free; it does once there is room.
func TestPreallocSkippedLowDisk(t *testing.T) {
	const segSize = 64 << 10
	env := newDiskEnv(0)
	reserve := env.total / 100 // above the 1 MiB minimum: the 1% floor applies
	env.free.Store(reserve + segSize/2)
	hook, waitSpare := spareSignal()
	opts := env.options(Options{Dir: t.TempDir(), FS: vfs.NewMem(), SegmentSize: segSize, alwaysZeroFill: true,
		MinFreeDisk: DiskReserve{Bytes: 1 << 20}, onSpare: hook})
	s := openStore(t, opts)
	defer s.Close()
	l := openLedger(t, s, "t")
	for i := range 8 { // past the first request for a spare
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 1<<10))
	}
	select {
	case reason := <-env.skips:
		if reason != PreallocLowDisk {
			t.Fatalf("skip reason %q", reason)
		}
	case <-time.After(ledgertest.Timeout):
		t.Fatal("the zero-fill was not skipped")
	}
	if s.journal.hasSpare() {
		t.Fatal("a spare was zero-filled into the reserve")
	}
	env.free.Store(1 << 30)
	for i := 8; i < 16; i++ {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 1<<10))
	}
	waitSpare(t)
}

func TestParseDiskReserve(t *testing.T) {
	for in, want := range map[string]DiskReserve{
		"0": {}, "1048576": {Bytes: 1 << 20}, "512MiB": {Bytes: 512 << 20}, "512 MiB": {Bytes: 512 << 20},
		"2GB": {Bytes: 2e9}, "1.5G": {Bytes: 3 << 29}, "100k": {Bytes: 100 << 10}, "5%": {Percent: 5}, "0.5 %": {Percent: 0.5},
	} {
		got, err := ParseDiskReserve(in)
		if err != nil || got != want {
			t.Errorf("ParseDiskReserve(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "5 parsecs", "100%", "-3%", "1e30TB"} {
		if got, err := ParseDiskReserve(in); err == nil {
			t.Errorf("ParseDiskReserve(%q) = %+v, want an error", in, got)
		}
	}
	if s := (DiskReserve{Bytes: 512 << 20}).String(); s != "512.0 MiB" {
		t.Errorf("String() = %q", s)
	}
}
