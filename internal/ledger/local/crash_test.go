package local

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
	"github.com/messagebus/messagebus/internal/ledger/vfs/faultfs"
)

var crashSeeds = flag.Int("crash.seeds", 40, "number of random seeds TestCrashRecovery runs")

// abandon stops the store as a crash would, persisting nothing more: queued
// appends fail, cursors are not flushed. Tests use it with faultfs.Crash.
func (s *Store) abandon() {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.closed.Store(true)
	s.journal.mu.Lock()
	for _, h := range s.openHandles() {
		h.closed.Store(true)
		h.l.handle = nil
	}
	s.journal.mu.Unlock()
	s.journal.abandon()
	close(s.stopBg)
	s.bg.Wait()
	s.segs.closeAll()
	s.reg.close()
}

// checkPayload verifies that data is a ledgertest.Payload, byte for byte: a
// recovered entry that nobody acknowledged must still be one that was written.
func checkPayload(data []byte) error {
	head, _, ok := bytes.Cut(data, []byte(":"))
	if !ok {
		return fmt.Errorf("no payload header in %.30q", data)
	}
	prefix, num, ok := strings.Cut(string(head), "#")
	i, err := strconv.Atoi(num)
	if !ok || err != nil {
		return fmt.Errorf("bad payload header %q", head)
	}
	if !bytes.Equal(data, ledgertest.Payload(prefix, i, len(data))) {
		return fmt.Errorf("payload %q differs from what was written", head)
	}
	return nil
}

// ackLog is what the test was told is durable.
type ackLog struct {
	mu      sync.Mutex
	entries map[string]map[int64][]byte // topic → id → data
	trimmed map[string]int64            // topic → highest FirstEntryID seen after a Trim
	ids     map[string]int64            // topic → ledger id
}

func newAckLog() *ackLog {
	return &ackLog{entries: map[string]map[int64][]byte{}, trimmed: map[string]int64{}, ids: map[string]int64{}}
}

func (a *ackLog) ack(t *testing.T, topic string, id int64, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.entries[topic]
	if m == nil {
		m = map[int64][]byte{}
		a.entries[topic] = m
	}
	if old, ok := m[id]; ok && !bytes.Equal(old, data) {
		t.Errorf("%s: id %d acknowledged twice with different data", topic, id)
	}
	m[id] = data
}

func (a *ackLog) trim(topic string, first int64) {
	a.mu.Lock()
	a.trimmed[topic] = max(a.trimmed[topic], first)
	a.mu.Unlock()
}

// verify checks a recovered store against the log: every acknowledged,
// untrimmed entry present and identical, ids consecutive, nothing corrupt,
// and appends continuing after the last recovered id.
func (a *ackLog) verify(t *testing.T, s *Store, topics []string) {
	t.Helper()
	for _, topic := range topics {
		l := openLedger(t, s, topic)
		a.mu.Lock()
		if id, ok := a.ids[topic]; ok && id != l.ID() {
			t.Fatalf("%s: ledger id %d after recovery, was %d", topic, l.ID(), id)
		}
		a.ids[topic] = l.ID()
		trimmed, acked := a.trimmed[topic], a.entries[topic]
		a.mu.Unlock()

		first, last := l.FirstEntryID(), l.LastEntryID()
		if first > trimmed {
			t.Fatalf("%s: FirstEntryID %d beyond any trim (%d)", topic, first, trimmed)
		}
		es := ledgertest.ReadAll(t, l, first)
		if int64(len(es)) != last-first+1 || l.Entries() != int64(len(es)) {
			var missing []int64
			for i, id := 0, first; id <= last; id++ {
				if i < len(es) && es[i].ID == id {
					i++
				} else {
					missing = append(missing, id)
				}
			}
			t.Fatalf("%s: read %d entries, ids %d..%d (missing %v), Entries %d\n%s", topic, len(es), first, last, missing, l.Entries(), dumpJournal(t, s, l.ID()))
		}
		for i, e := range es {
			if e.ID != first+int64(i) {
				t.Fatalf("%s: entry #%d has id %d, want %d", topic, i, e.ID, first+int64(i))
			}
			if err := checkPayload(e.Data); err != nil {
				t.Fatalf("%s: entry %d: %v", topic, e.ID, err)
			}
		}
		for id, data := range acked {
			if id < first {
				continue // trimmed
			}
			if id > last || !bytes.Equal(es[id-first].Data, data) {
				t.Fatalf("%s: acknowledged entry %d lost or changed (recovered %d..%d)", topic, id, first, last)
			}
		}
		data := ledgertest.Payload(topic+"/verify", int(last+1), 40)
		if id := ledgertest.MustAppend(t, l, data); id != last+1 {
			t.Fatalf("%s: append after recovery got id %d, want %d", topic, id, last+1)
		}
		a.ack(t, topic, last+1, data)
	}
}

// TestCrashRecovery writes under concurrency (appends, trims, cursor flushes,
// segment roll-overs and deletions), crashes with faultfs at a random moment,
// recovers and checks, several times per seed.
func TestCrashRecovery(t *testing.T) {
	seeds := *crashSeeds
	if testing.Short() {
		seeds = min(seeds, 8)
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { crashSeed(t, uint64(seed)) })
	}
}

func crashSeed(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	ffs := faultfs.New(vfs.NewMem(), seed)
	opts := Options{
		Dir:                 t.TempDir(),
		FS:                  ffs,
		SegmentSize:         int64(1024 + rng.IntN(32<<10)),
		CacheBytes:          int64(1 + rng.IntN(16<<10)),
		CursorFlushInterval: time.Duration(1+rng.IntN(5)) * time.Millisecond,
		Logger:              quietLogger(t),
	}
	topics := make([]string, 1+rng.IntN(4))
	for i := range topics {
		topics[i] = fmt.Sprintf("t%d", i)
	}
	log := newAckLog()
	for round := range 3 {
		opts.FS = ffs.Session() // a new process after each crash
		s := openStore(t, opts)
		log.verify(t, s, topics)
		crashUnderLoad(t, s, ffs, rng, log, topics, round)
	}
	opts.FS = ffs.Session()
	s := openStore(t, opts)
	log.verify(t, s, topics)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	log.verify(t, s, topics)
	s.Close()
}

func crashUnderLoad(t *testing.T, s *Store, ffs *faultfs.FS, rng *rand.Rand, log *ackLog, topics []string, round int) {
	// Crash after a number of acknowledgements, or in the middle of a sync
	// (the group being synced is in flight), or of the directory sync of a
	// new segment, whichever comes first.
	target := int64(20 + rng.IntN(400))
	mode := faultfs.CrashMode(rng.IntN(2))
	crashed := ffs.Crashed()
	switch rng.IntN(3) {
	case 1:
		ffs.CrashAfter(faultfs.OpSync, rng.IntN(60), mode)
	case 2:
		ffs.CrashAfter(faultfs.OpSyncDir, rng.IntN(4), mode)
	}
	var (
		acks     atomic.Int64
		crashNow = make(chan struct{})
		once     sync.Once
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for ti, topic := range topics {
		l := openLedger(t, s, topic)
		for w := range 2 {
			wseed := rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(wseed, uint64(ti)))
				sem := make(chan struct{}, 8) // appends in flight
				prefix := fmt.Sprintf("%s/%d/%d", topic, round, w)
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						for range cap(sem) { // wait for the callbacks
							sem <- struct{}{}
						}
						return
					case sem <- struct{}{}:
					}
					size := 20 + r.IntN(300)
					if r.IntN(20) == 0 {
						size = r.IntN(10 << 10)
					}
					data := ledgertest.Payload(prefix, seq, size)
					l.Append(data, func(id int64, err error) {
						if err == nil {
							log.ack(t, topic, id, data)
							if acks.Add(1) == target {
								once.Do(func() { close(crashNow) })
							}
						}
						<-sem
					})
					if w == 0 && seq%40 == 39 {
						l.Trim(l.LastEntryID() - int64(r.IntN(30)))
						log.trim(topic, l.FirstEntryID())
						c := ledger.NewCursorState(l.FirstEntryID() - 1)
						l.SaveCursor("sub", c)
					}
				}
			}()
		}
	}
	select {
	case <-crashed: // inside a sync or a directory sync
	case <-crashNow:
		if err := ffs.Crash(mode); err != nil {
			t.Fatal(err)
		}
	case <-time.After(ledgertest.Timeout):
		t.Fatalf("only %d of %d appends acknowledged", acks.Load(), target)
	}
	s.abandon()
	close(stop)
	wg.Wait()
}

func TestCursorSurvivesCrash(t *testing.T) {
	for _, mode := range []faultfs.CrashMode{faultfs.DropUnsynced, faultfs.TornTail} {
		ffs := faultfs.New(vfs.NewMem(), uint64(mode)+1)
		flushed := make(chan struct{}, 1)
		opts := Options{Dir: t.TempDir(), FS: ffs.Session(), CursorFlushInterval: 5 * time.Millisecond,
			onFlush: func() {
				select {
				case flushed <- struct{}{}:
				default:
				}
			}}
		s := openStore(t, opts)
		l := openLedger(t, s, "t")
		for i := range 20 {
			ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 30))
		}
		st1 := ledger.NewCursorState(3)
		st1.Ack(5)
		st1.AckBatch(7, []int64{6}, 3)
		st1.Properties = map[string]string{"k": "v"}
		select { // forget flushes that began before the save
		case <-flushed:
		default:
		}
		if err := l.SaveCursor("sub", st1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-flushed: // a later interval tick wrote it
		case <-time.After(ledgertest.Timeout):
			t.Fatal("cursor never flushed")
		}
		st2 := st1.Clone()
		st2.AckCumulative(12)
		l.SaveCursor("sub", st2) // may or may not be flushed before the crash
		ffs.Crash(mode)
		s.abandon()

		opts.FS = ffs.Session()
		s = openStore(t, opts)
		got := openLedger(t, s, "t").Cursors()["sub"]
		enc := func(c *ledger.CursorState) []byte { b, _ := c.MarshalBinary(); return b }
		if got == nil || !bytes.Equal(enc(got), enc(st1)) && !bytes.Equal(enc(got), enc(st2)) {
			t.Fatalf("cursor after crash = %+v, want the state saved before the last flush or after", got)
		}
		s.Close()
	}
}

// TestCursorFlushedOnLedgerClose: with a flush interval that never fires,
// closing the ledger alone makes the state survive a crash.
func TestCursorFlushedOnLedgerClose(t *testing.T) {
	ffs := faultfs.New(vfs.NewMem(), 9)
	opts := Options{Dir: t.TempDir(), FS: ffs.Session(), CursorFlushInterval: time.Hour}
	s := openStore(t, opts)
	l := openLedger(t, s, "t")
	st := ledger.NewCursorState(41)
	st.Ack(50)
	l.SaveCursor("sub", st)
	l.SaveCursor("gone", st)
	if err := l.DeleteCursor("gone"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ffs.Crash(faultfs.DropUnsynced)
	s.abandon()
	opts.FS = ffs.Session()
	s = openStore(t, opts)
	defer s.Close()
	cs := openLedger(t, s, "t").Cursors()
	if c := cs["sub"]; c == nil || c.MarkDelete != 41 || !c.IsAcked(50) || len(cs) != 1 {
		t.Fatalf("cursors after crash = %v", cs)
	}
}

// TestJournalFailure: a failed sync or write fails the appends of its group
// and every later one (never a success after a failure, so nothing is lost
// silently); acknowledged entries stay readable and survive a reopen.
func TestJournalFailure(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpSync, faultfs.OpWrite} {
		t.Run(fmt.Sprint(op), func(t *testing.T) {
			ffs := faultfs.New(vfs.NewMem(), 5)
			opts := Options{Dir: t.TempDir(), FS: ffs, SegmentSize: 8 << 10}
			s := openStore(t, opts)
			ls := []ledger.Ledger{openLedger(t, s, "a"), openLedger(t, s, "b")}
			log := newAckLog()
			for i := range 10 {
				for _, l := range ls {
					data := ledgertest.Payload(l.Name(), i, 50)
					log.ack(t, l.Name(), ledgertest.MustAppend(t, l, data), data)
				}
			}
			boom := errors.New("injected disk error")
			ffs.FailAfter(op, 3, boom)
			var (
				mu       sync.Mutex
				sawError bool
				wg       sync.WaitGroup
			)
			const n = 300
			wg.Add(2 * n)
			for _, l := range ls {
				go func() {
					for i := range n {
						data := ledgertest.Payload(l.Name()+"/load", i, 100)
						l.Append(data, func(id int64, err error) {
							defer wg.Done()
							mu.Lock() // callbacks run in append order
							defer mu.Unlock()
							switch {
							case err == nil && sawError:
								t.Errorf("%s: append succeeded after an earlier one failed", l.Name())
							case err == nil:
								log.ack(t, l.Name(), id, data)
							case !errors.Is(err, boom):
								t.Errorf("append failed with %v, want the injected error", err)
							default:
								sawError = true
							}
						})
					}
				}()
			}
			wg.Wait()
			if !sawError {
				t.Fatal("no append failed")
			}
			if r := ledgertest.Wait(t, ledgertest.AppendAsync(ls[0], []byte("x"))); !errors.Is(r.Err, boom) {
				t.Fatalf("append after failure: %+v", r)
			}
			for _, l := range ls { // acknowledged entries are still served
				log.mu.Lock()
				want := len(log.entries[l.Name()])
				log.mu.Unlock()
				if es := ledgertest.ReadAll(t, l, 0); len(es) != want || l.LastEntryID() != int64(want-1) {
					t.Fatalf("%s: %d entries readable, last %d; %d acknowledged", l.Name(), len(es), l.LastEntryID(), want)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ffs.ClearFaults()
			s = openStore(t, opts)
			log.verify(t, s, []string{"a", "b"})
			s.Close()
		})
	}
}
