package delayed

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const testDir = "/delayed"

var sub = Name{Topic: "persistent://public/default/t", Subscription: "s"}

// env is a store on a crashable in-memory file system with a manual clock.
type env struct {
	t     *testing.T
	fs    *vfs.MemFS
	clock *atomic.Int64
	opts  Options
	st    *Store
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewCrashableMem(), clock: &atomic.Int64{}, opts: opts}
	e.clock.Store(1_000_000)
	e.opts.fs = e.fs
	e.opts.now = e.clock.Load
	if e.opts.Logger == nil {
		e.opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.opts.FlushInterval == 0 {
		e.opts.FlushInterval = time.Hour // tests flush explicitly
	}
	e.open()
	t.Cleanup(func() {
		if e.st != nil {
			e.st.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := Open(testDir, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// crash simulates a crash: the file system keeps only what was synced; the
// old store is abandoned (closed afterwards on its own file system, which is
// no longer the one used).
func (e *env) crash() {
	e.t.Helper()
	clone := e.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	old := e.st
	e.fs = clone
	e.opts.fs = clone
	e.open()
	old.Close()
}

func (e *env) index(n Name) *Index {
	e.t.Helper()
	x, err := e.st.Index(n, 7, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

func (e *env) now() int64 { return e.clock.Load() }

func popAll(x *Index, now int64) []int64 {
	var out []int64
	for {
		ids := x.PopDue(now, 3)
		if len(ids) == 0 {
			return out
		}
		out = append(out, ids...)
	}
}

func TestDelayedOrderByDueThenID(t *testing.T) {
	e := newEnv(t, Options{})
	x := e.index(sub)
	now := e.now()
	x.Add(5, now+300)
	x.Add(9, now+100)
	x.Add(2, now+300)
	x.Add(7, now+100)
	x.Add(1, now+200)
	x.Add(9, now+100) // again: no effect
	if n := x.Len(); n != 5 {
		t.Fatalf("len %d, want 5", n)
	}
	if at, ok := x.Next(); !ok || at != now+100 {
		t.Fatalf("next = %d, %v; want %d", at, ok, now+100)
	}
	if ids := x.PopDue(now+99, 10); len(ids) != 0 {
		t.Fatalf("popped %v before due", ids)
	}
	if got := popAll(x, now+1000); !slices.Equal(got, []int64{7, 9, 1, 2, 5}) {
		t.Fatalf("popped %v, want [7 9 1 2 5]", got)
	}
	if _, ok := x.Next(); ok || x.Len() != 0 {
		t.Fatalf("not empty after popping all: len %d", x.Len())
	}
}

func TestDelayedPopDueLimit(t *testing.T) {
	e := newEnv(t, Options{})
	x := e.index(sub)
	now := e.now()
	for i := range int64(10) {
		x.Add(i, now+1+i%3)
	}
	first := x.PopDue(now+2, 4)
	if !slices.Equal(first, []int64{0, 3, 6, 9}) {
		t.Fatalf("first pop %v, want [0 3 6 9]", first)
	}
	second := x.PopDue(now+2, 4)
	if !slices.Equal(second, []int64{1, 4, 7}) {
		t.Fatalf("second pop %v, want [1 4 7] (only those due)", second)
	}
	if at, _ := x.Next(); at != now+3 {
		t.Fatalf("next %d, want %d", at, now+3)
	}
	if got := x.PopDue(now+3, 0); len(got) != 0 {
		t.Fatalf("limit 0 popped %v", got)
	}
}

// TestWindowRefill uses a window of 4 entries: the rest is read back from
// disk as the window drains, in order, whatever the order of the adds.
func TestDelayedWindowRefill(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 4, Window: time.Hour})
	x := e.index(sub)
	now := e.now()
	rng := rand.New(rand.NewPCG(3, 4))
	var want []key
	for i := range int64(500) {
		k := key{at: now + 1 + rng.Int64N(1000), id: i}
		x.Add(k.id, k.at)
		want = append(want, k)
		if n := x.ram.len(); n > 4 {
			t.Fatalf("window holds %d entries, bound 4", n)
		}
	}
	slices.SortFunc(want, cmpKey)
	var got []int64
	for at := now; at <= now+1001; at += 7 {
		got = append(got, x.PopDue(at, 5)...)
		if n := x.ram.len(); n > 4 {
			t.Fatalf("window holds %d entries, bound 4", n)
		}
	}
	got = append(got, popAll(x, now+2000)...)
	if len(got) != len(want) {
		t.Fatalf("popped %d entries, want %d", len(got), len(want))
	}
	for i, k := range want {
		if got[i] != k.id {
			t.Fatalf("pop %d: id %d, want %d", i, got[i], k.id)
		}
	}
}

// TestWindowSpan: a window loaded from disk spans at most Window of due time.
func TestDelayedWindowSpan(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 1000, Window: time.Second})
	x := e.index(sub)
	now := e.now()
	for i := range int64(100) {
		x.Add(i, now+3_600_000+i*100) // an hour away, 100 ms apart
	}
	if at, ok := x.Next(); !ok || at != now+3_600_000 {
		t.Fatalf("next %d, %v", at, ok)
	}
	if n := x.ram.len(); n > 10 {
		t.Fatalf("window holds %d entries spanning more than 1s", n)
	}
	x.Add(1000, now+500) // near: into the window
	if at, _ := x.Next(); at != now+500 {
		t.Fatalf("next %d, want %d", at, now+500)
	}
	if got := x.PopDue(now+500, 10); !slices.Equal(got, []int64{1000}) {
		t.Fatalf("popped %v", got)
	}
	if got := popAll(x, now+4_000_000); len(got) != 100 {
		t.Fatalf("popped %d, want 100", len(got))
	}
}

func TestDelayedReset(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 4})
	x := e.index(sub)
	now := e.now()
	for i := range int64(50) {
		x.Add(i, now+10+i)
	}
	x.Reset()
	if x.Len() != 0 {
		t.Fatalf("len %d after reset", x.Len())
	}
	if _, ok := x.Next(); ok {
		t.Fatal("next after reset")
	}
	x.Add(99, now+5)
	if got := popAll(x, now+1000); !slices.Equal(got, []int64{99}) {
		t.Fatalf("popped %v, want [99]", got)
	}
	x.Close()
	e.reopen()
	x = e.index(sub)
	if got := popAll(x, now+1000); len(got) != 0 {
		t.Fatalf("popped %v after reset and reopen", got)
	}
}

func TestDelayedReopenAfterClose(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 8})
	x := e.index(sub)
	other := e.index(Name{Topic: sub.Topic, Subscription: "other"})
	now := e.now()
	for i := range int64(100) {
		x.Add(i, now+1000-i)
	}
	other.Add(500, now+1)
	x.PopDue(now+950, 1000) // ids 99..50 are due
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	e.reopen() // closes other too
	x = e.index(sub)
	if n := x.Len(); n != 50 {
		t.Fatalf("len %d after reopen, want 50", n)
	}
	got := popAll(x, now+2000)
	want := make([]int64, 0, 50)
	for i := int64(49); i >= 0; i-- {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after reopen popped %v, want %v", got, want)
	}
	other = e.index(Name{Topic: sub.Topic, Subscription: "other"})
	if got := popAll(other, now+2000); !slices.Equal(got, []int64{500}) {
		t.Fatalf("other index popped %v", got)
	}
}

// TestReopenAfterCrash: what was added before the last flush survives a
// crash that loses everything unsynced; adding everything again (as the
// broker does when it re-reads from the mark-delete) yields each entry once.
func TestDelayedReopenAfterCrash(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 16})
	x := e.index(sub)
	now := e.now()
	for i := range int64(100) {
		x.Add(i, now+100+i)
	}
	x.PopDue(now+109, 1000) // 0..9 popped
	if err := e.st.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := int64(100); i < 150; i++ { // not flushed
		x.Add(i, now+100+i)
	}
	e.crash()
	x = e.index(sub)
	if at, ok := x.Next(); !ok || at != now+110 {
		t.Fatalf("next after crash %d, %v; want %d", at, ok, now+110)
	}
	for i := int64(0); i < 150; i++ { // re-added from the cursor, popped ones too
		x.Add(i, now+100+i)
	}
	got := popAll(x, now+1000)
	if len(got) != 150 {
		t.Fatalf("popped %d entries, want 150", len(got))
	}
	for i, id := range got {
		if id != int64(i) {
			t.Fatalf("pop %d: id %d", i, id)
		}
	}
	if x.Len() != 0 {
		t.Fatalf("len %d after popping all", x.Len())
	}
}

// TestCrashBeforeFlush: unflushed adds are lost (the broker adds them again),
// earlier state is intact.
func TestDelayedCrashBeforeFlush(t *testing.T) {
	e := newEnv(t, Options{})
	x := e.index(sub)
	now := e.now()
	x.Add(1, now+10)
	e.st.Flush()
	x.Add(2, now+20)
	e.crash()
	x = e.index(sub)
	if got := popAll(x, now+100); !slices.Equal(got, []int64{1}) {
		t.Fatalf("popped %v after crash, want [1]", got)
	}
}

func TestDelayedDrop(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 4})
	x := e.index(sub)
	keep := e.index(Name{Topic: sub.Topic, Subscription: "keep"})
	now := e.now()
	for i := range int64(20) {
		x.Add(i, now+10)
		keep.Add(i, now+10)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Drop(); err != nil { // after close, as the broker does
		t.Fatal(err)
	}
	if names := e.st.Indexes(); len(names) != 1 || names[0].Subscription != "keep" {
		t.Fatalf("indexes after drop: %v", names)
	}
	e.reopen()
	x = e.index(sub)
	if got := popAll(x, now+100); len(got) != 0 {
		t.Fatalf("dropped index popped %v", got)
	}
	keep = e.index(Name{Topic: sub.Topic, Subscription: "keep"})
	if got := popAll(keep, now+100); len(got) != 20 {
		t.Fatalf("other index popped %d, want 20", len(got))
	}
}

// TestRecreatedWhileOpen: a subscription removed and created again before
// the old handle is gone gets an empty index, which the old handle's close
// and drop leave alone.
func TestDelayedRecreatedWhileOpen(t *testing.T) {
	e := newEnv(t, Options{})
	old := e.index(sub)
	now := e.now()
	old.Add(1, now+10)
	x := e.index(sub)
	if x.Len() != 0 {
		t.Fatalf("new handle holds %d entries", x.Len())
	}
	x.Add(2, now+10)
	old.Close()
	old.Drop()
	e.st.Flush()
	e.reopen()
	x = e.index(sub)
	if got := popAll(x, now+100); !slices.Equal(got, []int64{2}) {
		t.Fatalf("popped %v, want [2]", got)
	}
	// Reopened after close, then the old handle drops: the new one keeps it.
	x.Add(3, now+10)
	x.Close()
	y := e.index(sub)
	x.Drop()
	y.Close()
	y = e.index(sub)
	if got := popAll(y, now+100); !slices.Equal(got, []int64{3}) {
		t.Fatalf("popped %v, want [3]", got)
	}
}

func TestDelayedEpochChange(t *testing.T) {
	e := newEnv(t, Options{})
	x := e.index(sub)
	now := e.now()
	x.Add(1, now+10)
	x.Close()
	y, err := e.st.Index(sub, 8, false) // the topic was deleted and created again
	if err != nil {
		t.Fatal(err)
	}
	if got := popAll(y, now+100); len(got) != 0 {
		t.Fatalf("index of a new epoch popped %v", got)
	}
}

func TestDelayedTemporary(t *testing.T) {
	e := newEnv(t, Options{})
	tmp := Name{Topic: sub.Topic, Subscription: "reader"}
	x, err := e.st.Index(tmp, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	now := e.now()
	x.Add(1, now+10)
	e.st.Flush()
	e.crash() // never closed: the next open deletes it
	if names := e.st.Indexes(); len(names) != 0 {
		t.Fatalf("indexes after crash: %v", names)
	}
	x, _ = e.st.Index(tmp, 7, true)
	if got := popAll(x, now+100); len(got) != 0 {
		t.Fatalf("temporary index popped %v after crash", got)
	}
	x.Add(2, now+10)
	x.Close()
	if names := e.st.Indexes(); len(names) != 0 {
		t.Fatalf("indexes after closing a temporary one: %v", names)
	}
}

func TestDelayedRemove(t *testing.T) {
	e := newEnv(t, Options{})
	x := e.index(sub)
	x.Add(1, e.now()+10)
	if err := e.st.Remove(sub); err == nil {
		t.Fatal("removed an open index")
	}
	x.Close()
	if err := e.st.Remove(sub); err != nil {
		t.Fatal(err)
	}
	if got := popAll(e.index(sub), e.now()+100); len(got) != 0 {
		t.Fatalf("removed index popped %v", got)
	}
}

// TestAgainstModel runs random adds (with duplicates), pops, resets,
// reopens and crashes followed by re-adds against a map.
func TestDelayedAgainstModel(t *testing.T) {
	steps := 20_000
	if raceEnabled {
		steps = 4_000
	}
	for seed := range uint64(4) {
		e := newEnv(t, Options{WindowEntries: 1 + int(seed)*5, Window: time.Duration(1+seed*50) * time.Millisecond})
		rng := rand.New(rand.NewPCG(seed, 99))
		x := e.index(sub)
		model := map[key]bool{}
		// maybe holds entries removed since the last sync: a crash may bring
		// them back.
		maybe := map[key]bool{}
		var nextID int64
		for step := range steps {
			now := e.now()
			switch op := rng.IntN(100); {
			case op < 55:
				k := key{at: now + 1 + rng.Int64N(300), id: nextID}
				if len(model) > 0 && rng.IntN(4) == 0 { // a duplicate
					for m := range model {
						k = m
						break
					}
				} else {
					nextID++
				}
				x.Add(k.id, k.at)
				model[k] = true
			case op < 85:
				limit := 1 + rng.IntN(20)
				got := x.PopDue(now, limit)
				var due []key
				for k := range model {
					if k.at <= now {
						due = append(due, k)
					}
				}
				slices.SortFunc(due, cmpKey)
				if len(due) > limit {
					due = due[:limit]
				}
				if len(got) != len(due) {
					t.Fatalf("seed %d step %d: popped %d, want %d", seed, step, len(got), len(due))
				}
				for i, k := range due {
					if got[i] != k.id {
						t.Fatalf("seed %d step %d: pop %d = %d, want %d", seed, step, i, got[i], k.id)
					}
					delete(model, k)
					maybe[k] = true
				}
			case op < 94:
				e.clock.Add(1 + rng.Int64N(30))
			case op < 95:
				e.clock.Add(-rng.Int64N(100)) // the wall clock may go back
			case op < 96:
				x.Reset()
				for k := range model {
					maybe[k] = true
				}
				clear(model)
			case op < 98:
				x.Close()
				e.reopen()
				x = e.index(sub)
				clear(maybe)
			default:
				// Crash, then add again what the model holds and what the
				// crash may have brought back (the broker re-reads every
				// unacked entry).
				if rng.IntN(2) == 0 {
					e.st.Flush()
					clear(maybe)
				}
				e.crash()
				x = e.index(sub)
				for k := range maybe {
					model[k] = true
				}
				clear(maybe)
				for k := range model {
					x.Add(k.id, k.at)
				}
			}
			want, ok := earliest(model)
			at, got := x.Next()
			if got != ok || (ok && at != want.at) {
				t.Fatalf("seed %d step %d: next = %d, %v; want %d, %v", seed, step, at, got, want.at, ok)
			}
			if n := x.ram.len(); n > e.opts.WindowEntries {
				t.Fatalf("seed %d step %d: window holds %d, bound %d", seed, step, n, e.opts.WindowEntries)
			}
		}
	}
}

func earliest(m map[key]bool) (key, bool) {
	var best key
	ok := false
	for k := range m {
		if !ok || k.less(best) {
			best, ok = k, true
		}
	}
	return best, ok
}

// TestConcurrentUse runs several indexes, each used by its own goroutine as
// a subscription does, while the store's flusher runs every millisecond.
func TestDelayedConcurrentUse(t *testing.T) {
	e := newEnv(t, Options{WindowEntries: 16, FlushInterval: time.Millisecond})
	done := make(chan error)
	for g := range 4 {
		go func() {
			x, err := e.st.Index(Name{Topic: sub.Topic, Subscription: string(rune('a' + g))}, 1, g%2 == 0)
			if err != nil {
				done <- err
				return
			}
			now := e.now()
			popped := 0
			for i := range int64(3000) {
				x.Add(i, now+1+i%100)
				if i%10 == 0 {
					popped += len(x.PopDue(now+i%100, 20))
					x.Next()
				}
			}
			popped += len(popAll(x, now+1000))
			if popped != 3000 {
				done <- fmt.Errorf("index %d popped %d, want 3000", g, popped)
				return
			}
			done <- x.Close()
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
