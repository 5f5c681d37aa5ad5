package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/ledger/object"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

const topic = "persistent://public/default/t1"

type env struct {
	t       *testing.T
	dir     string
	objects objstore.Store
	opts    Options
	st      *Store
}

func newEnv(t *testing.T, wrap func(objstore.Store) objstore.Store) (*env, *s3test.Gateway) {
	gw := s3test.Start(t)
	var objects objstore.Store = gw.Bucket(t, "tiered", nil)
	if wrap != nil {
		objects = wrap(objects)
	}
	e := &env{t: t, dir: t.TempDir(), objects: objects}
	e.opts = Options{Objects: objects, Prefix: "mb", DeletionLag: -1, BlockSize: 2000, MaxObjectBytes: 20000}
	e.open()
	return e, gw
}

func (e *env) open() {
	e.t.Helper()
	in, err := local.Open(local.Options{Dir: filepath.Join(e.dir, "ledger")})
	if err != nil {
		e.t.Fatal(err)
	}
	o := e.opts
	o.Dir = filepath.Join(e.dir, "offload")
	st, err := New(in, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { st.Close() })
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) ledger() *Ledger {
	e.t.Helper()
	l, err := e.st.Open(context.Background(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return l.(*Ledger)
}

func payload(id int64) []byte {
	return []byte(fmt.Sprintf("entry %d %s", id, strings.Repeat("p", int(id%50))))
}

func fill(t *testing.T, l ledger.Ledger, n int64) {
	t.Helper()
	done := make(chan error, n)
	for id := range n {
		l.Append(payload(id), func(got int64, err error) {
			if err == nil && got != id {
				err = fmt.Errorf("entry id %d, want %d", got, id)
			}
			done <- err
		})
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func waitStatus(t *testing.T, l *Ledger) ledger.OffloadStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := l.OffloadStatus()
		if st.Status != ledger.OffloadRunning {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatal("offload still running after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readAll reads from id from to the end in small batches and checks every payload.
func readAll(t *testing.T, l ledger.Ledger, from, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := from
	for next < want {
		es, err := l.Read(ctx, next, 37, 3000)
		if err != nil {
			t.Fatalf("read from %d: %v", next, err)
		}
		if len(es) == 0 {
			t.Fatalf("read from %d: nothing, want up to %d", next, want-1)
		}
		for _, e := range es {
			if e.ID != next || !bytes.Equal(e.Data, payload(next)) {
				t.Fatalf("entry %d: got id %d %q", next, e.ID, e.Data)
			}
			next++
		}
	}
}

// readAllInto is readAll through ReadInto with one buffer: offloaded
// entries come as from Read, local ones in the buffer.
func readAllInto(t *testing.T, l *Ledger, from, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf ledger.ReadBuf
	for next := from; next < want; {
		es, err := l.ReadInto(ctx, next, 37, 3000, &buf)
		if err != nil || len(es) == 0 {
			t.Fatalf("ReadInto from %d: %d entries, %v", next, len(es), err)
		}
		for _, e := range es {
			if e.ID != next || !bytes.Equal(e.Data, payload(next)) {
				t.Fatalf("entry %d: got id %d %q", next, e.ID, e.Data)
			}
			next++
		}
	}
}

func TestOffloadThenReadBackAfterLocalDeletion(t *testing.T) {
	e, _ := newEnv(t, nil)
	l := e.ledger()
	fill(t, l, 1000)
	if l.OffloadStatus().Status != ledger.OffloadNotRun {
		t.Fatalf("status before any offload: %+v", l.OffloadStatus())
	}
	if err := l.Offload(600); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, l)
	if st.Status != ledger.OffloadSuccess || st.FirstUnoffloaded != 600 {
		t.Fatalf("status %+v, want SUCCESS up to 600", st)
	}
	// The deletion lag is off: local entries below 600 are gone, yet the
	// ledger still starts at 0.
	if f := l.inner.FirstEntryID(); f != 600 {
		t.Fatalf("local first entry %d, want 600", f)
	}
	if l.FirstEntryID() != 0 || l.Entries() != 1000 {
		t.Fatalf("first %d entries %d, want 0 and 1000", l.FirstEntryID(), l.Entries())
	}
	readAll(t, l, 0, 1000)
	readAll(t, l, 357, 1000) // from the middle of an object
	objs, err := e.objects.List(context.Background(), "mb/public/default/t1/")
	if err != nil || len(objs) < 2 {
		t.Fatalf("objects %v %v, want several (20 KB each)", objs, err)
	}
	// An offload of what is offloaded does nothing.
	if err := l.Offload(600); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("second offload: %+v", st)
	}

	e.reopen()
	l = e.ledger()
	if l.FirstEntryID() != 0 || l.OffloadedSize() == 0 {
		t.Fatalf("after reopen: first %d, offloaded %d", l.FirstEntryID(), l.OffloadedSize())
	}
	readAll(t, l, 0, 1000)
	readAllInto(t, l, 0, 1000)

	// Trimming (retention) drops whole objects from the manifest and the store.
	l.Trim(300)
	if l.FirstEntryID() != 300 {
		t.Fatalf("first after trim %d", l.FirstEntryID())
	}
	if _, err := l.Read(context.Background(), 299, 1, 100); !errors.Is(err, ledger.ErrTrimmed) {
		t.Fatalf("read below the trim: %v", err)
	}
	readAll(t, l, 300, 1000)
}

func TestOffloadFailureLeavesErrorAndLosesNothing(t *testing.T) {
	var faulty *objstore.Faulty
	e, _ := newEnv(t, func(s objstore.Store) objstore.Store {
		faulty = objstore.NewFaulty(s, objstore.Faults{Seed: 7})
		return faulty
	})
	l := e.ledger()
	fill(t, l, 500)
	faulty.SetDown(true)
	if err := l.Offload(400); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, l)
	if st.Status != ledger.OffloadError || !strings.Contains(st.LastError, "injected") || st.FirstUnoffloaded != 0 {
		t.Fatalf("status %+v, want ERROR with the store's error", st)
	}
	if l.inner.FirstEntryID() != 0 {
		t.Fatal("local data deleted although nothing was offloaded")
	}
	readAll(t, l, 0, 500)

	// A torn write (half an object stored, error) is replaced by the next offload.
	faulty.SetDown(false)
	faulty.SetFaults(objstore.Faults{TornRate: 1})
	if err := l.Offload(400); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadError {
		t.Fatalf("torn writes only: %+v", st)
	}
	faulty.SetFaults(objstore.Faults{})
	if err := l.Offload(400); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess || st.FirstUnoffloaded != 400 {
		t.Fatalf("after the store recovered: %+v", st)
	}
	readAll(t, l, 0, 500)

	// Reads of offloaded data while the store is down are retried until
	// their context ends, and succeed once it is back.
	e.reopen() // cold cache
	l = e.ledger()
	faulty.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := l.Read(ctx, 0, 10, 1000)
	cancel()
	if !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("read with the store down until the deadline: %v", err)
	}
	failed := testutil.ToFloat64(e.st.o.Metrics.readErrors)
	type result struct {
		es  []ledger.Entry
		err error
	}
	got := make(chan result, 1)
	go func() {
		es, err := l.Read(context.Background(), 0, 10, 1000)
		got <- result{es, err}
	}()
	for testutil.ToFloat64(e.st.o.Metrics.readErrors) == failed { // the read is waiting for the store
		time.Sleep(5 * time.Millisecond)
	}
	faulty.SetDown(false)
	if r := <-got; r.err != nil || len(r.es) == 0 || r.es[0].ID != 0 {
		t.Fatalf("read once the store is back: %d entries, %v", len(r.es), r.err)
	}
	readAll(t, l, 0, 500)
}

func TestOffloadAdoptsObjectOfInterruptedOffload(t *testing.T) {
	e, _ := newEnv(t, nil)
	l := e.ledger()
	fill(t, l, 100)
	// What a broker killed between the PUT and the manifest write leaves: the
	// object, no manifest entry.
	entries, err := l.inner.Read(context.Background(), 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := object.Encode(object.Header{LedgerID: l.ID(), First: 0, Last: 99}, entries, e.opts.BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	key := e.st.objectKey(topic, l.ID(), 0, 99)
	if err := e.objects.Put(context.Background(), key, obj, true); err != nil {
		t.Fatal(err)
	}
	if l.FirstEntryID() != 0 || l.OffloadedSize() != 0 {
		t.Fatal("an object without a manifest entry is not part of the ledger")
	}
	if err := l.Offload(100); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess || st.FirstUnoffloaded != 100 {
		t.Fatalf("status %+v", st)
	}
	readAll(t, l, 0, 100)
}

func TestCorruptObjectIsNotServed(t *testing.T) {
	e, gw := newEnv(t, nil)
	l := e.ledger()
	fill(t, l, 200)
	if err := l.Offload(200); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	// Flip a byte of the first block in the gateway's backing file.
	key := l.manifest().Objects[0].Key
	path := filepath.Join(gw.Dir, "tiered", key)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[object.HeaderSize+20] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	l = e.ledger()
	if es, err := l.Read(context.Background(), 0, 10, 1000); !errors.Is(err, object.ErrCorrupt) {
		t.Fatalf("read of a corrupt block: %d entries, err %v; want ErrCorrupt", len(es), err)
	}
}

func TestOffloadWhileRunningIsRefused(t *testing.T) {
	var faulty *objstore.Faulty
	e, _ := newEnv(t, func(s objstore.Store) objstore.Store {
		faulty = objstore.NewFaulty(s, objstore.Faults{Seed: 3, SlowRate: 1, SlowDelay: 300 * time.Millisecond})
		return faulty
	})
	l := e.ledger()
	fill(t, l, 50)
	if err := l.Offload(50); err != nil {
		t.Fatal(err)
	}
	if err := l.Offload(50); !errors.Is(err, ledger.ErrOffloadRunning) {
		t.Fatalf("second offload while one runs: %v", err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
}

func TestLocalDeletionWaitsForTheLag(t *testing.T) {
	e, _ := newEnv(t, nil)
	e.opts.DeletionLag = 400 * time.Millisecond
	e.reopen()
	l := e.ledger()
	fill(t, l, 300)
	if err := l.Offload(200); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	if f := l.inner.FirstEntryID(); f != 0 {
		t.Fatalf("local entries deleted before the lag: first %d", f)
	}
	// A restart before the lag passed keeps the deadline.
	e.reopen()
	l = e.ledger()
	deadline := time.Now().Add(10 * time.Second)
	for l.inner.FirstEntryID() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("local entries still there 10 s after the lag: first %d", l.inner.FirstEntryID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	readAll(t, l, 0, 300)
}

func TestOrphanObjectsAreCollected(t *testing.T) {
	e, _ := newEnv(t, nil)
	l := e.ledger()
	fill(t, l, 100)
	ctx := context.Background()
	orphan := e.st.objectKey(topic, l.ID(), 50, 120) // a range no offload will write
	if err := e.objects.Put(ctx, orphan, []byte("left by a crash"), true); err != nil {
		t.Fatal(err)
	}
	other := e.st.objectKey(topic+"-other", l.ID()+1, 0, 9) // another ledger's: not touched
	if err := e.objects.Put(ctx, other, []byte("x"), true); err != nil {
		t.Fatal(err)
	}
	if err := l.Offload(40); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	want := strings.Join([]string{other, e.st.objectKey(topic, l.ID(), 0, 39)}, " ") // in key order
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := e.objects.List(ctx, "mb/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range list {
			keys = append(keys, o.Key)
		}
		if strings.Join(keys, " ") == want {
			break
		}
		if time.Now().After(deadline) { // deletion runs in the background
			t.Fatalf("objects %v, want %v", keys, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readAll(t, l, 0, 100)
}

func TestConcurrentReadersShareBlockReads(t *testing.T) {
	var faulty *objstore.Faulty
	e, _ := newEnv(t, func(s objstore.Store) objstore.Store {
		faulty = objstore.NewFaulty(s, objstore.Faults{Seed: 9})
		return faulty
	})
	e.opts.MaxObjectBytes = 1 << 20 // one object of several blocks
	e.reopen()
	l := e.ledger()
	fill(t, l, 400)
	if err := l.Offload(400); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, l); st.Status != ledger.OffloadSuccess {
		t.Fatalf("status %+v", st)
	}
	e.reopen() // cold cache
	l = e.ledger()
	faulty.SetFaults(objstore.Faults{SlowRate: 1, SlowDelay: 20 * time.Millisecond})
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			readAll(t, l, 0, 400)
		}()
	}
	<-done
	<-done
	x, err := e.st.cache.Index(context.Background(), l.manifest().Objects[0].ref())
	if err != nil {
		t.Fatal(err)
	}
	if misses := testutil.ToFloat64(e.st.o.Metrics.cacheMisses); misses != float64(len(x.Blocks)) {
		t.Fatalf("%v block reads from the store for %d blocks and two readers", misses, len(x.Blocks))
	}
}
