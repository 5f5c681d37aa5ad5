// Package ledgertest is the conformance test suite every ledger.Store
// implementation runs: append, read, ids, change notification, cursors,
// trimming, deletion and, for durable stores, reopening.
//
// It depends on package ledger and the standard library only.
package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Harness describes the store under test.
type Harness struct {
	// Storage prepares empty storage for one test and returns a function that
	// opens a store on it. With Durable, calling it again after the previous
	// store was closed must reopen the same data.
	Storage func(t *testing.T) (open func(t *testing.T) ledger.Store)
	// Durable stores keep their data across Close and open.
	Durable bool
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name    string
		durable bool
		fn      func(*testing.T, func(*testing.T) ledger.Store)
	}{
		{"AppendRead", false, testAppendRead},
		{"EmptyLedger", false, testEmptyLedger},
		{"ConcurrentAppendOrder", false, testConcurrentAppendOrder},
		{"ReadLimits", false, testReadLimits},
		{"Changed", false, testChanged},
		{"Trim", false, testTrim},
		{"Cursors", false, testCursors},
		{"CloseAndReopenLedger", false, testCloseAndReopenLedger},
		{"DeleteAndIDs", false, testDeleteAndIDs},
		{"StoreClose", false, testStoreClose},
		{"CancelledContext", false, testCancelledContext},
		{"Reopen", true, testReopen},
		{"ReopenAfterDelete", true, testReopenAfterDelete},
		{"ReadInto", true, testReadInto},
	}
	for _, tc := range tests {
		if tc.durable && !h.Durable {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h.Storage(t)) })
	}
}

// Timeout bounds every wait for an event in the suite.
const Timeout = 20 * time.Second

// Result is the outcome of one Append.
type Result struct {
	ID  int64
	Err error
}

// AppendAsync appends data and returns a channel that receives the outcome.
func AppendAsync(l ledger.Ledger, data []byte) <-chan Result {
	ch := make(chan Result, 1)
	l.Append(data, func(id int64, err error) { ch <- Result{id, err} })
	return ch
}

// Wait returns the outcome of an AppendAsync, failing t after Timeout.
func Wait(t testing.TB, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(Timeout):
		t.Fatal("append not completed")
		return Result{}
	}
}

// MustAppend appends data, waits until it is durable and returns its id.
func MustAppend(t testing.TB, l ledger.Ledger, data []byte) int64 {
	t.Helper()
	r := Wait(t, AppendAsync(l, data))
	if r.Err != nil {
		t.Fatalf("append: %v", r.Err)
	}
	return r.ID
}

// Payload returns a deterministic entry body for (topic, i) of about size bytes.
func Payload(topic string, i, size int) []byte {
	b := fmt.Appendf(nil, "%s#%d:", topic, i)
	for len(b) < size {
		b = append(b, byte('a'+(i+len(b))%26))
	}
	return b
}

// ReadAll reads every entry of l from from to LastEntryID.
func ReadAll(t testing.TB, l ledger.Ledger, from int64) []ledger.Entry {
	t.Helper()
	var all []ledger.Entry
	for {
		es, err := l.Read(context.Background(), from, 1000, 1<<20)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if len(es) == 0 {
			return all
		}
		all = append(all, es...)
		from = es[len(es)-1].ID + 1
	}
}

func mustOpen(t *testing.T, s ledger.Store, topic string) ledger.Ledger {
	t.Helper()
	l, err := s.Open(context.Background(), topic)
	if err != nil {
		t.Fatalf("open %s: %v", topic, err)
	}
	return l
}

func closeStore(t *testing.T, s ledger.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
}

func testAppendRead(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "t")
	var size int64
	for i := range 10 {
		data := Payload("t", i, 10+i*100)
		size += int64(len(data))
		// done runs after the entry is visible.
		ch := make(chan error, 1)
		l.Append(data, func(id int64, err error) {
			switch {
			case err != nil:
				ch <- err
			case id != int64(i):
				ch <- fmt.Errorf("id %d, want %d", id, i)
			case l.LastEntryID() < id:
				ch <- fmt.Errorf("done(%d) called before LastEntryID advanced (%d)", id, l.LastEntryID())
			default:
				ch <- nil
			}
		})
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(Timeout):
			t.Fatal("append not completed")
		}
	}
	es := ReadAll(t, l, 0)
	if len(es) != 10 {
		t.Fatalf("read %d entries, want 10", len(es))
	}
	for i, e := range es {
		if e.ID != int64(i) || !bytes.Equal(e.Data, Payload("t", i, 10+i*100)) {
			t.Fatalf("entry %d: id %d data %.20q", i, e.ID, e.Data)
		}
	}
	if l.LastEntryID() != 9 || l.FirstEntryID() != 0 || l.Entries() != 10 || l.Size() != size {
		t.Fatalf("last %d first %d entries %d size %d; want 9 0 10 %d",
			l.LastEntryID(), l.FirstEntryID(), l.Entries(), l.Size(), size)
	}
	if l.Name() != "t" {
		t.Fatalf("Name = %q", l.Name())
	}
}

func testEmptyLedger(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "empty")
	if l.FirstEntryID() != 0 || l.LastEntryID() != -1 || l.Entries() != 0 || l.Size() != 0 {
		t.Fatalf("first %d last %d entries %d size %d", l.FirstEntryID(), l.LastEntryID(), l.Entries(), l.Size())
	}
	es, err := l.Read(context.Background(), 0, 10, 1<<20)
	if err != nil || len(es) != 0 {
		t.Fatalf("Read on empty ledger = %v, %v", es, err)
	}
	if len(l.Cursors()) != 0 {
		t.Fatalf("Cursors = %v", l.Cursors())
	}
}

func testConcurrentAppendOrder(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "c")
	other := mustOpen(t, s, "other") // interleaved appends of another ledger
	const writers, per = 4, 300
	var (
		mu      sync.Mutex
		order   []int64
		byData  = map[string]int64{}
		wg      sync.WaitGroup
		failure error
	)
	wg.Add(2 * writers * per)
	for w := range writers {
		go func() {
			for i := range per {
				data := Payload(fmt.Sprintf("w%d", w), i, 20+i%50)
				l.Append(data, func(id int64, err error) {
					mu.Lock()
					if err != nil && failure == nil {
						failure = err
					}
					order = append(order, id)
					byData[string(data)] = id
					mu.Unlock()
					wg.Done()
				})
				other.Append(data, func(_ int64, err error) {
					if err != nil {
						mu.Lock()
						failure = err
						mu.Unlock()
					}
					wg.Done()
				})
			}
		}()
	}
	waitGroup(t, &wg)
	if failure != nil {
		t.Fatal(failure)
	}
	for i, id := range order {
		if id != int64(i) {
			t.Fatalf("done #%d had id %d: not called in append order", i, id)
		}
	}
	for _, e := range ReadAll(t, l, 0) {
		if byData[string(e.Data)] != e.ID {
			t.Fatalf("entry %d holds data appended as %d", e.ID, byData[string(e.Data)])
		}
		delete(byData, string(e.Data))
	}
	if len(byData) != 0 {
		t.Fatalf("%d appended entries not read back", len(byData))
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(Timeout):
		t.Fatal("appends not completed")
	}
}

func testReadLimits(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "r")
	for i := range 20 {
		MustAppend(t, l, bytes.Repeat([]byte{byte(i)}, 100))
	}
	check := func(from int64, maxEntries, maxBytes int, want []int64) {
		t.Helper()
		es, err := l.Read(context.Background(), from, maxEntries, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, e := range es {
			got = append(got, e.ID)
			if !bytes.Equal(e.Data, bytes.Repeat([]byte{byte(e.ID)}, 100)) {
				t.Fatalf("entry %d has wrong data", e.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Read(%d, %d, %d) = %v, want %v", from, maxEntries, maxBytes, got, want)
		}
	}
	check(5, 3, 1<<20, []int64{5, 6, 7})
	check(5, 100, 250, []int64{5, 6})
	check(5, 100, 10, []int64{5}) // the first entry is returned whatever its size
	check(18, 100, 1<<20, []int64{18, 19})
	check(20, 100, 1<<20, nil)
	check(25, 100, 1<<20, nil)
}

func testChanged(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "ch")
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any append")
	default:
	}
	// Wake-up without waiting for done: a tailing reader.
	got := make(chan []ledger.Entry, 1)
	go func() {
		for {
			c := l.Changed()
			if es, _ := l.Read(context.Background(), 0, 10, 1<<20); len(es) > 0 {
				got <- es
				return
			}
			<-c
		}
	}()
	AppendAsync(l, []byte("x"))
	select {
	case <-ch:
	case <-time.After(Timeout):
		t.Fatal("Changed not closed after an append")
	}
	select {
	case es := <-got:
		if string(es[0].Data) != "x" {
			t.Fatalf("tailing reader got %q", es[0].Data)
		}
	case <-time.After(Timeout):
		t.Fatal("tailing reader not woken")
	}
	if l.LastEntryID() != 0 {
		t.Fatalf("LastEntryID = %d", l.LastEntryID())
	}
	next := l.Changed()
	select {
	case <-next:
		t.Fatal("a fresh Changed channel is already closed")
	default:
	}
}

func testTrim(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "tr")
	for i := range 10 {
		MustAppend(t, l, Payload("tr", i, 50))
	}
	l.Trim(4)
	if l.FirstEntryID() != 4 || l.Entries() != 6 || l.Size() != 6*50 {
		t.Fatalf("after Trim(4): first %d entries %d size %d", l.FirstEntryID(), l.Entries(), l.Size())
	}
	if _, err := l.Read(context.Background(), 2, 10, 1<<20); !errors.Is(err, ledger.ErrTrimmed) {
		t.Fatalf("Read below first: %v, want ErrTrimmed", err)
	}
	if es := ReadAll(t, l, 4); len(es) != 6 || es[0].ID != 4 {
		t.Fatalf("read after trim: %d entries", len(es))
	}
	l.Trim(2) // never moves back
	if l.FirstEntryID() != 4 {
		t.Fatalf("Trim moved FirstEntryID back to %d", l.FirstEntryID())
	}
	l.Trim(100) // beyond the end: everything written is trimmed
	if l.FirstEntryID() != 10 || l.LastEntryID() != 9 || l.Entries() != 0 || l.Size() != 0 {
		t.Fatalf("after Trim(100): first %d last %d entries %d size %d",
			l.FirstEntryID(), l.LastEntryID(), l.Entries(), l.Size())
	}
	if id := MustAppend(t, l, []byte("next")); id != 10 {
		t.Fatalf("append after trimming everything got id %d, want 10", id)
	}
	if es := ReadAll(t, l, 10); len(es) != 1 || string(es[0].Data) != "next" {
		t.Fatalf("read after trim-all: %v", es)
	}
}

func testCursors(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "cur")
	c := ledger.NewCursorState(4)
	c.Ack(7)
	c.AckBatch(9, []int64{5}, 3)
	c.Properties = map[string]string{"p": "v"}
	if err := l.SaveCursor("sub", c); err != nil {
		t.Fatal(err)
	}
	c.Ack(6) // the store keeps the state as of SaveCursor
	if err := l.SaveCursor("other", ledger.NewCursorState(-1)); err != nil {
		t.Fatal(err)
	}
	cs := l.Cursors()
	got := cs["sub"]
	if len(cs) != 2 || got == nil || got.MarkDelete != 4 || !got.IsAcked(7) || got.IsAcked(6) ||
		!slices.Equal(got.BatchPending(9), []int64{5}) || got.Properties["p"] != "v" {
		t.Fatalf("Cursors = %v", cs)
	}
	got.Ack(5) // mutating the result must not change the store's copy
	if l.Cursors()["sub"].MarkDelete != 4 {
		t.Fatal("Cursors returned the store's own state")
	}
	if err := l.DeleteCursor("other"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Cursors()["other"]; ok || len(l.Cursors()) != 1 {
		t.Fatalf("deleted cursor still listed: %v", l.Cursors())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, s, "cur")
	if c := l.Cursors()["sub"]; c == nil || c.MarkDelete != 4 || !c.IsAcked(7) {
		t.Fatalf("cursor not kept across ledger close: %v", l.Cursors())
	}
}

func testCloseAndReopenLedger(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "cl")
	if l2 := mustOpen(t, s, "cl"); l2 != l {
		t.Fatal("opening an open ledger returned a different instance")
	}
	id := l.ID()
	pending := make([]<-chan Result, 50)
	for i := range pending {
		pending[i] = AppendAsync(l, Payload("cl", i, 30))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range pending { // appends made before Close complete
		if r := Wait(t, ch); r.Err != nil || r.ID != int64(i) {
			t.Fatalf("append %d before close: %+v", i, r)
		}
	}
	if r := Wait(t, AppendAsync(l, []byte("late"))); !errors.Is(r.Err, ledger.ErrClosed) {
		t.Fatalf("append after close: %+v, want ErrClosed", r)
	}
	if _, err := l.Read(context.Background(), 0, 1, 1); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
	if err := l.SaveCursor("x", ledger.NewCursorState(-1)); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("SaveCursor after close: %v, want ErrClosed", err)
	}
	l2 := mustOpen(t, s, "cl")
	if l2.ID() != id || l2.LastEntryID() != 49 || len(ReadAll(t, l2, 0)) != 50 {
		t.Fatalf("reopened ledger: id %d/%d last %d", l2.ID(), id, l2.LastEntryID())
	}
	if next := MustAppend(t, l2, []byte("more")); next != 50 {
		t.Fatalf("append after reopen got id %d", next)
	}
}

func testDeleteAndIDs(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	a := mustOpen(t, s, "a")
	b := mustOpen(t, s, "b")
	if b.ID() <= a.ID() {
		t.Fatalf("ids not increasing: a=%d b=%d", a.ID(), b.ID())
	}
	MustAppend(t, a, []byte("1"))
	a.SaveCursor("sub", ledger.NewCursorState(0))
	topics, err := s.Topics(context.Background())
	slices.Sort(topics)
	if err != nil || !slices.Equal(topics, []string{"a", "b"}) {
		t.Fatalf("Topics = %v, %v", topics, err)
	}
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(context.Background(), 0, 1, 1); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("read of a deleted ledger: %v, want ErrClosed", err)
	}
	if err := s.Delete(context.Background(), "a"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("deleting a missing ledger: %v, want ErrNotFound", err)
	}
	topics, _ = s.Topics(context.Background())
	if !slices.Equal(topics, []string{"b"}) {
		t.Fatalf("Topics after delete = %v", topics)
	}
	a2 := mustOpen(t, s, "a")
	if a2.ID() <= b.ID() {
		t.Fatalf("recreated ledger id %d not above %d", a2.ID(), b.ID())
	}
	if a2.LastEntryID() != -1 || len(a2.Cursors()) != 0 {
		t.Fatalf("recreated ledger not empty: last %d cursors %v", a2.LastEntryID(), a2.Cursors())
	}
}

func testStoreClose(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	l := mustOpen(t, s, "sc")
	MustAppend(t, l, []byte("x"))
	closeStore(t, s)
	if _, err := s.Open(context.Background(), "sc"); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
	if r := Wait(t, AppendAsync(l, []byte("y"))); !errors.Is(r.Err, ledger.ErrClosed) {
		t.Fatalf("append after store close: %+v", r)
	}
}

func testReopen(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	l := mustOpen(t, s, "p")
	other := mustOpen(t, s, "q")
	for i := range 30 {
		MustAppend(t, l, Payload("p", i, 40+i))
		MustAppend(t, other, Payload("q", i, 10))
	}
	l.Trim(5)
	c := ledger.NewCursorState(9)
	c.Ack(12)
	l.SaveCursor("sub", c)
	id := l.ID()
	closeStore(t, s)

	s = open(t)
	defer func() { closeStore(t, s) }() // s is reopened below
	l = mustOpen(t, s, "p")
	if l.ID() != id || l.LastEntryID() != 29 || l.FirstEntryID() != 5 {
		t.Fatalf("after reopen: id %d/%d last %d first %d", l.ID(), id, l.LastEntryID(), l.FirstEntryID())
	}
	for _, e := range ReadAll(t, l, 5) {
		if !bytes.Equal(e.Data, Payload("p", int(e.ID), 40+int(e.ID))) {
			t.Fatalf("entry %d differs after reopen", e.ID)
		}
	}
	if got := l.Cursors()["sub"]; got == nil || got.MarkDelete != 9 || !got.IsAcked(12) {
		t.Fatalf("cursor after reopen: %+v", got)
	}
	if next := MustAppend(t, l, []byte("after")); next != 30 {
		t.Fatalf("append after reopen got id %d", next)
	}
	// Trimmed to the end before closing: ids still continue.
	q := mustOpen(t, s, "q")
	q.Trim(30)
	qid := q.ID()
	closeStore(t, s)
	s = open(t)
	q = mustOpen(t, s, "q")
	if q.ID() != qid || q.LastEntryID() != 29 || q.FirstEntryID() != 30 {
		t.Fatalf("trimmed ledger after reopen: id %d last %d first %d", q.ID(), q.LastEntryID(), q.FirstEntryID())
	}
	if next := MustAppend(t, q, []byte("x")); next != 30 {
		t.Fatalf("append to a fully trimmed ledger after reopen got id %d", next)
	}
}

func testReopenAfterDelete(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	a := mustOpen(t, s, "a")
	MustAppend(t, a, []byte("old"))
	b := mustOpen(t, s, "b")
	maxID := b.ID()
	if err := s.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = open(t)
	defer closeStore(t, s)
	topics, _ := s.Topics(context.Background())
	if len(topics) != 0 {
		t.Fatalf("deleted ledgers back after reopen: %v", topics)
	}
	a = mustOpen(t, s, "a")
	if a.ID() <= maxID || a.LastEntryID() != -1 {
		t.Fatalf("recreated after reopen: id %d (deleted max %d) last %d", a.ID(), maxID, a.LastEntryID())
	}
}

// testCancelledContext: calls that may go remote give up on an ended
// context with its error, and leave the store usable.
func testCancelledContext(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	defer closeStore(t, s)
	l := mustOpen(t, s, "c")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Open(ctx, "d"); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled context: %v", err)
	}
	if _, err := l.Read(ctx, 0, 1, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled context: %v", err)
	}
	if _, err := s.Topics(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("topics with a cancelled context: %v", err)
	}
	if err := s.Delete(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("delete with a cancelled context: %v", err)
	}
	if _, err := l.Read(context.Background(), 0, 1, 1); err != nil {
		t.Fatalf("read after the cancelled calls: %v", err)
	}
}

// testReadInto: a BufferReader's ReadInto returns what Read does, batch by
// batch, and reads stored entries into the one buffer it is given.
func testReadInto(t *testing.T, open func(*testing.T) ledger.Store) {
	s := open(t)
	l := mustOpen(t, s, "b")
	if _, ok := l.(ledger.BufferReader); !ok {
		closeStore(t, s)
		t.Skip("not a ledger.BufferReader")
	}
	for i := range 100 {
		MustAppend(t, l, Payload("b", i, 100+i))
	}
	closeStore(t, s)
	s = open(t) // the entries are read from storage, not from memory
	defer closeStore(t, s)
	l = mustOpen(t, s, "b")
	br := l.(ledger.BufferReader)
	var buf ledger.ReadBuf
	reused := false
	for from := int64(0); from < 100; {
		want, err := l.Read(context.Background(), from, 7, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadInto(context.Background(), from, 7, 1000, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("ReadInto(%d) gave %d entries, Read %d", from, len(got), len(want))
		}
		for i, e := range got {
			if e.ID != want[i].ID || !bytes.Equal(e.Data, Payload("b", int(e.ID), 100+int(e.ID))) {
				t.Fatalf("ReadInto(%d): entry %d (id %d) differs", from, i, e.ID)
			}
			if within(e.Data, buf.Data[:cap(buf.Data)]) {
				reused = true
			}
		}
		from = got[len(got)-1].ID + 1
	}
	if !reused {
		t.Fatal("ReadInto never read into its buffer")
	}
}

// within tells whether b's bytes lie in buf's memory.
func within(b, buf []byte) bool {
	if len(b) == 0 || len(buf) == 0 {
		return false
	}
	p, base := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&buf[0]))
	return p >= base && p+uintptr(len(b)) <= base+uintptr(len(buf))
}
