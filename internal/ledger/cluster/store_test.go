package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/cluster"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// env is 3 real etcd members and the Versity gateway, shared by the
// subtests of one test.
type env struct {
	etcd    *etcdtest.Cluster
	client  *clientv3.Client
	objects objstore.Store
	n       atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{etcd: etcdtest.Start(t, 3)}
	e.client = e.etcd.Client(t)
	gw := s3test.Start(t)
	e.objects = gw.Bucket(t, "cluster", nil)
	return e
}

// prefix is a fresh key space (one "cluster") for a subtest.
func (e *env) prefix() string { return fmt.Sprintf("/test%d/", e.n.Add(1)) }

func (e *env) open(t *testing.T, prefix, broker string, objects objstore.Store, mod func(*cluster.Options)) *cluster.Store {
	t.Helper()
	o := cluster.Options{Client: e.client, Prefix: prefix, Objects: objects, ObjectPrefix: prefix[1:] + "obj",
		Broker: broker, WALMaxDelay: 2 * time.Millisecond, CursorFlush: 50 * time.Millisecond, LeaseTTL: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := cluster.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	e := newEnv(t)
	ledgertest.Run(t, ledgertest.Harness{
		Durable: true,
		Storage: func(t *testing.T) func(*testing.T) ledger.Store {
			p := e.prefix()
			return func(t *testing.T) ledger.Store { return e.open(t, p, "b1", e.objects, nil) }
		},
	})
}

// TestConformanceRewrite runs the conformance suite with the WAL rewrite
// and collection running every few milliseconds, under the suite's reads,
// trims and reopenings.
func TestConformanceRewrite(t *testing.T) {
	e := newEnv(t)
	ledgertest.Run(t, ledgertest.Harness{
		Durable: true,
		Storage: func(t *testing.T) func(*testing.T) ledger.Store {
			p := e.prefix()
			return func(t *testing.T) ledger.Store {
				return e.open(t, p, "b1", e.objects, func(o *cluster.Options) {
					o.RewriteInterval, o.GCInterval = 5*time.Millisecond, 7*time.Millisecond
				})
			}
		},
	})
}

func TestCluster(t *testing.T) {
	e := newEnv(t)
	t.Run("Fenced", func(t *testing.T) { testFenced(t, e) })
	t.Run("GroupCommit", func(t *testing.T) { testGroupCommit(t, e) })
	t.Run("ObjectStoreFaults", func(t *testing.T) { testFaults(t, e) })
	t.Run("ReadFromObjects", func(t *testing.T) { testReadFromObjects(t, e) })
	t.Run("CursorCheckpoint", func(t *testing.T) { testCursorCheckpoint(t, e) })
	t.Run("SyncCursors", func(t *testing.T) { testSyncCursors(t, e) })
	t.Run("Pipeline", func(t *testing.T) { testPipeline(t, e) })
	t.Run("PipelineGap", func(t *testing.T) { testPipelineGap(t, e) })
	t.Run("Rewrite", func(t *testing.T) { testRewrite(t, e) })
	t.Run("RewriteCrash", func(t *testing.T) { testRewriteCrash(t, e) })
	t.Run("RewriteUnloaded", func(t *testing.T) { testRewriteUnloaded(t, e) })
	t.Run("TrimCollect", func(t *testing.T) { testTrimCollect(t, e) })
	t.Run("Orphans", func(t *testing.T) { testOrphans(t, e) })
	t.Run("Abandon", func(t *testing.T) { testAbandon(t, e) })
}

// testAbandon: appends stuck on an object store out of reach (a PUT that
// never answers) fail at once with ErrFenced when the broker lost its lease
// (Abandon), not after the commit timeout, and the ledger closes at once.
func testAbandon(t *testing.T, e *env) {
	p := e.prefix()
	hole := &slowPuts{Store: e.objects, delay: time.Hour}
	s := e.open(t, p, "a", hole, func(o *cluster.Options) { o.CallTimeout, o.CommitTimeout = time.Minute, 2*time.Minute })
	defer s.Close()
	l, err := s.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	for i := range 3 {
		l.Append(ledgertest.Payload("t", i, 10), func(_ int64, err error) { done <- err })
	}
	for hole.now.Load() == 0 { // the PUT is under way
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	s.Abandon(func(name string) bool { return name == "t" })
	for range 3 {
		select {
		case err := <-done:
			if !errors.Is(err, cluster.ErrFenced) {
				t.Fatalf("append: %v, want ErrFenced", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an append still waits 10 s after Abandon")
		}
	}
	l.Append([]byte("later"), func(_ int64, err error) { done <- err })
	if err := <-done; !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("append after Abandon: %v, want ErrFenced", err)
	}
	if err := l.Close(); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("close of an abandoned ledger: %v, want ErrFenced", err)
	}
	t.Logf("appends failed and ledger closed %v after Abandon", time.Since(start))
}

// testFenced: a broker whose lease expired (a pause longer than the TTL)
// cannot commit once another broker took the topic, and its appends fail
// with ErrFenced; the new owner continues from the committed index.
func testFenced(t *testing.T, e *env) {
	p := e.prefix()
	a := e.open(t, p, "a", e.objects, nil)
	defer a.Close()
	la, err := a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ledgertest.MustAppend(t, la, ledgertest.Payload("a", i, 20))
	}
	b := e.open(t, p, "b", e.objects, nil)
	defer b.Close()
	if _, err := b.Open(context.Background(), "t"); !errors.Is(err, cluster.ErrOwned) {
		t.Fatalf("open of a topic another broker owns: %v, want ErrOwned", err)
	}
	// a's lease ends (as when it expires during a pause).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.client.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if lb.LastEntryID() != 4 {
		t.Fatalf("new owner sees last %d, want 4", lb.LastEntryID())
	}
	r := ledgertest.Wait(t, ledgertest.AppendAsync(la, []byte("from the fenced broker")))
	if !errors.Is(r.Err, cluster.ErrFenced) {
		t.Fatalf("append of the fenced broker: %+v, want ErrFenced", r)
	}
	t.Logf("fenced append: %v", r.Err)
	if r := ledgertest.Wait(t, ledgertest.AppendAsync(la, []byte("again"))); !errors.Is(r.Err, cluster.ErrFenced) {
		t.Fatalf("later append of the fenced broker: %+v", r)
	}
	if id := ledgertest.MustAppend(t, lb, []byte("b")); id != 5 {
		t.Fatalf("new owner appended id %d, want 5", id)
	}
	es := ledgertest.ReadAll(t, lb, 0)
	if len(es) != 6 || string(es[5].Data) != "b" {
		t.Fatalf("new owner reads %d entries", len(es))
	}
	if err := la.SaveCursor("s", ledger.NewCursorState(3)); err != nil {
		t.Fatal(err)
	}
	if err := la.Close(); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("close of the fenced ledger (checkpoint): %v, want ErrFenced", err)
	}
}

// testGroupCommit: appends of many topics share WAL objects: far fewer
// objects (and index transactions) than appends.
func testGroupCommit(t *testing.T, e *env) {
	p := e.prefix()
	s := e.open(t, p, "g", e.objects, func(o *cluster.Options) { o.WALMaxDelay = 20 * time.Millisecond })
	defer s.Close()
	const topics, per = 10, 50
	var wg sync.WaitGroup
	var failed atomic.Int64
	ls := make([]ledger.Ledger, topics)
	for i := range ls {
		l, err := s.Open(context.Background(), fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	for i := range per {
		for j, l := range ls {
			wg.Add(1)
			l.Append(ledgertest.Payload(fmt.Sprint(j), i, 100), func(_ int64, err error) {
				if err != nil {
					failed.Add(1)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	objs, err := e.objects.List(context.Background(), p[1:]+"obj/wal/g/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 || len(objs) > topics*per/10 {
		t.Fatalf("%d WAL objects for %d appends", len(objs), topics*per)
	}
	t.Logf("%d appends of %d topics in %d WAL objects", topics*per, topics, len(objs))
	for j, l := range ls {
		es := ledgertest.ReadAll(t, l, 0)
		if len(es) != per {
			t.Fatalf("topic %d: %d entries", j, len(es))
		}
		for i, en := range es {
			if !bytes.Equal(en.Data, ledgertest.Payload(fmt.Sprint(j), i, 100)) {
				t.Fatalf("topic %d entry %d differs", j, i)
			}
		}
	}
}

// testFaults: failed and torn PUTs are retried under new keys; every
// append completes and reads back.
func testFaults(t *testing.T, e *env) {
	p := e.prefix()
	f := objstore.NewFaulty(e.objects, objstore.Faults{Seed: 7, FailRate: 0.2, TornRate: 0.1})
	s := e.open(t, p, "f", f, func(o *cluster.Options) { o.CacheBytes = 1 })
	defer s.Close()
	l, err := s.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		ledgertest.MustAppend(t, l, ledgertest.Payload("t", i, 50))
	}
	f.SetFaults(objstore.Faults{})
	es := ledgertest.ReadAll(t, l, 0)
	if len(es) != 30 {
		t.Fatalf("%d entries read back", len(es))
	}
	for i, en := range es {
		if !bytes.Equal(en.Data, ledgertest.Payload("t", i, 50)) {
			t.Fatalf("entry %d differs", i)
		}
	}
}

// testReadFromObjects: another store (a new owner, nothing cached) reads
// the entries from the WAL objects.
func testReadFromObjects(t *testing.T, e *env) {
	p := e.prefix()
	a := e.open(t, p, "a", e.objects, nil)
	l, err := a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Append(ledgertest.Payload("t", i, 300), func(int64, error) {})
	}
	ledgertest.MustAppend(t, l, []byte("end"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := e.open(t, p, "b", e.objects, nil)
	defer b.Close()
	l, err = b.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	es := ledgertest.ReadAll(t, l, 0)
	if len(es) != 101 || string(es[100].Data) != "end" {
		t.Fatalf("%d entries", len(es))
	}
	for i, en := range es[:100] {
		if !bytes.Equal(en.Data, ledgertest.Payload("t", i, 300)) {
			t.Fatalf("entry %d differs", i)
		}
	}
}

// testCursorCheckpoint: a saved cursor reaches etcd within the flush
// interval, without Close (what a new owner resumes from after a kill -9).
func testCursorCheckpoint(t *testing.T, e *env) {
	p := e.prefix()
	a := e.open(t, p, "a", e.objects, nil)
	l, err := a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.MustAppend(t, l, []byte("x"))
	if err := l.SaveCursor("sub", ledger.NewCursorState(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ledgertest.Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := e.client.Get(ctx, p+"cursors/", clientv3.WithPrefix())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cursor not checkpointed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The broker dies: its lease is revoked, nothing closed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.client.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	b := e.open(t, p, "b", e.objects, nil)
	defer b.Close()
	l2, err := b.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if c := l2.Cursors()["sub"]; c == nil || c.MarkDelete != 0 {
		t.Fatalf("cursor on the new owner: %+v", l2.Cursors())
	}
	a.Close()
}

// testSyncCursors: a cursor saved then synced (ledger.CursorSyncer) is in
// etcd when SyncCursors returns, long before the periodic checkpoint, so a
// broker killed right after loses it not (the compaction cursor).
func testSyncCursors(t *testing.T, e *env) {
	p := e.prefix()
	a := e.open(t, p, "a", e.objects, func(o *cluster.Options) { o.CursorFlush = time.Hour })
	defer a.Close()
	l, err := a.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.MustAppend(t, l, []byte("x"))
	st := ledger.NewCursorState(0)
	st.Properties = map[string]string{"compactedLedger": "c/1"}
	if err := l.SaveCursor("__compaction", st); err != nil {
		t.Fatal(err)
	}
	if err := l.(ledger.CursorSyncer).SyncCursors(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.client.Revoke(ctx, a.Lease()); err != nil { // the broker dies
		t.Fatal(err)
	}
	b := e.open(t, p, "b", e.objects, nil)
	defer b.Close()
	l2, err := b.Open(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if c := l2.Cursors()["__compaction"]; c == nil || c.MarkDelete != 0 || c.Properties["compactedLedger"] != "c/1" {
		t.Fatalf("synced cursor on the new owner: %+v", c)
	}
}
