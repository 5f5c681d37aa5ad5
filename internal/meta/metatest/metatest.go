// Package metatest is the conformance suite of meta.Store: every
// implementation (the embedded Pebble store, the etcd store) runs it from its
// own tests, so the broker can rely on one behaviour whichever store it
// uses. It depends on meta and naming only.
package metatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Opener opens a store on one location: the first call finds it empty, and
// each later call opens what the previous store (closed by then) wrote.
type Opener func(t *testing.T) meta.Store

// NewLocation returns an Opener of a fresh, empty location.
type NewLocation func(t *testing.T) Opener

// Run runs the suite against the stores newLocation opens.
func Run(t *testing.T, newLocation NewLocation) {
	open := func(t *testing.T) meta.Store {
		s := newLocation(t)(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("CompareAndSet", func(t *testing.T) { testCompareAndSet(t, open(t)) })
	t.Run("DeleteMissing", func(t *testing.T) { testDeleteMissing(t, open(t)) })
	t.Run("ListAndWatch", func(t *testing.T) { testListAndWatch(t, open(t)) })
	t.Run("WatchDeleteAndRevisions", func(t *testing.T) { testWatchDeleteAndRevisions(t, open(t)) })
	t.Run("WatchEndsWithContext", func(t *testing.T) { testWatchEndsWithContext(t, open(t)) })
	t.Run("BootstrapAndPersistence", func(t *testing.T) { testBootstrapAndPersistence(t, newLocation(t)) })
	t.Run("SchemaRecords", func(t *testing.T) { testSchemaRecords(t, open(t)) })
	t.Run("ProducerNameGeneratorIDPerStart", func(t *testing.T) { testGeneratorIDPerStart(t, newLocation(t)) })
	t.Run("ProducerNameGeneratorIDAfterUpgrade", func(t *testing.T) { testGeneratorIDAfterUpgrade(t, open(t)) })
	t.Run("NextCounterValueConcurrent", func(t *testing.T) { testNextCounterValueConcurrent(t, open(t)) })
	t.Run("TopicPoliciesRecord", func(t *testing.T) { testTopicPoliciesRecord(t, open(t)) })
	t.Run("AccessRecordsAndAudit", func(t *testing.T) { testAccessRecordsAndAudit(t, open(t)) })
}

func testCompareAndSet(t *testing.T, s meta.Store) {
	ctx := context.Background()
	v, err := s.Put(ctx, "/a", []byte("1"), meta.NotExists)
	if err != nil || v != 1 {
		t.Fatalf("create: %d %v", v, err)
	}
	if _, err := s.Put(ctx, "/a", []byte("x"), meta.NotExists); !errors.Is(err, meta.ErrBadVersion) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := s.Put(ctx, "/a", []byte("2"), 5); !errors.Is(err, meta.ErrBadVersion) {
		t.Fatalf("stale version: %v", err)
	}
	if v, err = s.Put(ctx, "/a", []byte("2"), 1); err != nil || v != 2 {
		t.Fatalf("update: %d %v", v, err)
	}
	kv, err := s.Get(ctx, "/a")
	if err != nil || string(kv.Value) != "2" || kv.Version != 2 || kv.Key != "/a" {
		t.Fatalf("get: %+v %v", kv, err)
	}
	if v, err = s.Put(ctx, "/a", []byte("3"), meta.AnyVersion); err != nil || v != 3 {
		t.Fatalf("unconditional update: %d %v", v, err)
	}
	if err := s.Delete(ctx, "/a", 1); !errors.Is(err, meta.ErrBadVersion) {
		t.Fatalf("delete stale: %v", err)
	}
	if err := s.Delete(ctx, "/a", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/a"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// A key created again starts over at version 1.
	if v, err = s.Put(ctx, "/a", []byte("new"), meta.NotExists); err != nil || v != 1 {
		t.Fatalf("recreate: %d %v", v, err)
	}
	if _, err := s.Put(ctx, "/b", []byte("x"), 1); !errors.Is(err, meta.ErrBadVersion) {
		t.Fatalf("update of a missing key: %v", err)
	}
	// Empty values are values.
	if _, err := s.Put(ctx, "/empty", nil, meta.NotExists); err != nil {
		t.Fatal(err)
	}
	if kv, err := s.Get(ctx, "/empty"); err != nil || len(kv.Value) != 0 || kv.Version != 1 {
		t.Fatalf("empty value: %+v %v", kv, err)
	}
}

func testDeleteMissing(t *testing.T, s meta.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "/nope", meta.AnyVersion); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := s.Delete(ctx, "/nope", 3); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("delete missing at a version: %v", err)
	}
	if _, err := s.Get(ctx, "/nope"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if kvs, err := s.List(ctx, "/nope/"); err != nil || len(kvs) != 0 {
		t.Fatalf("list empty prefix: %v %v", kvs, err)
	}
}

func testListAndWatch(t *testing.T, s meta.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := s.Watch(ctx, "/p/")
	for _, k := range []string{"/p/b", "/p/a", "/q/z", "/p", "/p/c/d"} {
		if _, err := s.Put(ctx, k, []byte(k), meta.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := s.List(ctx, "/p/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
		if string(kv.Value) != kv.Key || kv.Version != 1 {
			t.Fatalf("listed %+v", kv)
		}
	}
	if !slices.Equal(keys, []string{"/p/a", "/p/b", "/p/c/d"}) {
		t.Fatalf("list: %v", keys)
	}
	for _, want := range []string{"/p/b", "/p/a", "/p/c/d"} {
		ev := next(t, events)
		if ev.Type != meta.EventPut || ev.KV.Key != want || string(ev.KV.Value) != want || ev.KV.Version != 1 {
			t.Fatalf("event %+v, want put %s", ev, want)
		}
	}
}

func testWatchDeleteAndRevisions(t *testing.T, s meta.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := s.Watch(ctx, "/w/")
	if _, err := s.Put(ctx, "/w/k", []byte("1"), meta.NotExists); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/w/k", []byte("2"), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "/w/k", 2); err != nil {
		t.Fatal(err)
	}
	var last int64
	for i, want := range []meta.EventType{meta.EventPut, meta.EventPut, meta.EventDelete} {
		ev := next(t, events)
		if ev.Type != want || ev.KV.Key != "/w/k" {
			t.Fatalf("event %d: %+v, want type %d", i, ev, want)
		}
		if ev.Revision <= last {
			t.Fatalf("event %d: revision %d after %d", i, ev.Revision, last)
		}
		last = ev.Revision
		if want == meta.EventDelete && ev.KV.Version != 2 {
			t.Fatalf("delete event carries version %d, want the deleted version 2", ev.KV.Version)
		}
	}
}

func testWatchEndsWithContext(t *testing.T, s meta.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	events := s.Watch(ctx, "/x/")
	cancel()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch channel not closed 10 s after its context ended")
		}
	}
}

func testBootstrapAndPersistence(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	r := &meta.Resources{Store: s}
	if err := r.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	tp, _ := naming.ParseTopic("persistent://public/default/orders")
	if err := r.PutPartitionedTopic(ctx, tp, 4, true); err != nil {
		t.Fatal(err)
	}
	if err := r.PutPartitionedTopic(ctx, tp, 4, true); !errors.Is(err, meta.ErrExists) {
		t.Fatalf("recreate partitioned: %v", err)
	}
	s.Close()

	s = open(t)
	defer s.Close()
	r = &meta.Resources{Store: s}
	tenants, _ := r.Tenants(ctx)
	if len(tenants) != 2 || tenants[0] != "public" {
		t.Fatalf("tenants: %v", tenants)
	}
	nss, _ := r.Namespaces(ctx, "public")
	if len(nss) != 1 || nss[0] != "public/default" {
		t.Fatalf("namespaces: %v", nss)
	}
	if n, err := r.PartitionedTopic(ctx, tp); err != nil || n != 4 {
		t.Fatalf("partitions: %d %v", n, err)
	}
	pts, _ := r.PartitionedTopics(ctx, tp.Namespace, naming.Persistent)
	if len(pts) != 1 || pts[0] != tp.String() {
		t.Fatalf("partitioned topics: %v", pts)
	}
	if err := r.CreateNamespace(ctx, naming.Namespace{Tenant: "nope", Name: "x"}, meta.Policies{}); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("namespace in missing tenant: %v", err)
	}
}

// testGeneratorIDPerStart: every start of a store (fresh, then reopened
// after a close) gets an id no earlier start got, from 0.
func testGeneratorIDPerStart(t *testing.T, open Opener) {
	ctx := context.Background()
	var ids []int64
	for start := 0; start < 3; start++ {
		s := open(t)
		r := &meta.Resources{Store: s}
		id, err := r.NextProducerNameGeneratorID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		s.Close()
	}
	if !slices.Equal(ids, []int64{0, 1, 2}) {
		t.Fatalf("generator ids of three starts: %v, want [0 1 2]", ids)
	}
}

// testGeneratorIDAfterUpgrade: a store bootstrapped by a version without the
// counter named producers {cluster}-0-{seq}; its first id is 1.
func testGeneratorIDAfterUpgrade(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := &meta.Resources{Store: s}
	if err := r.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	if id, err := r.NextProducerNameGeneratorID(ctx); err != nil || id != 1 {
		t.Fatalf("first id on an old store: %d %v, want 1", id, err)
	}
	if id, err := r.NextProducerNameGeneratorID(ctx); err != nil || id != 2 {
		t.Fatalf("second id: %d %v, want 2", id, err)
	}
}

// testNextCounterValueConcurrent: concurrent callers never get the same value.
func testNextCounterValueConcurrent(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := &meta.Resources{Store: s}
	const callers, each = 8, 25
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v, err := r.NextCounterValue(ctx, "test", 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[v] {
					t.Errorf("value %d handed out twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for v := range int64(callers * each) {
		if !seen[v] {
			t.Fatalf("value %d never handed out (got %d values)", v, len(seen))
		}
	}
}

func testTopicPoliciesRecord(t *testing.T, s meta.Store) {
	r := &meta.Resources{Store: s}
	ctx := context.Background()
	part, err := naming.ParseTopic("persistent://public/default/t-partition-3")
	if err != nil {
		t.Fatal(err)
	}
	n := 4
	if err := r.UpdateTopicPolicies(ctx, part, func(tp *meta.TopicPolicies) error { tp.MaxConsumerPerTopic = &n; return nil }); err != nil {
		t.Fatal(err)
	}
	// A partition's policies are its partitioned topic's.
	tp, err := r.TopicPolicies(ctx, part.Partitioned())
	if err != nil || tp.MaxConsumerPerTopic == nil || *tp.MaxConsumerPerTopic != 4 {
		t.Fatalf("read back: %+v %v", tp, err)
	}
	// Removing the last policy removes the record.
	if err := r.UpdateTopicPolicies(ctx, part, func(tp *meta.TopicPolicies) error { tp.MaxConsumerPerTopic = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Store.Get(ctx, meta.TopicPoliciesKey(part)); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("record of empty policies: %v", err)
	}
	if err := r.DeleteTopicPolicies(ctx, part); err != nil {
		t.Fatalf("delete missing policies: %v", err)
	}
}

func testAccessRecordsAndAudit(t *testing.T, s meta.Store) {
	r := &meta.Resources{Store: s}
	ctx := context.Background()
	if err := r.PutAccessTenant(ctx, "acme", meta.AccessTenant{Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.PutAccessTenant(ctx, "acme", meta.AccessTenant{}); !errors.Is(err, meta.ErrExists) {
		t.Fatalf("second access tenant: %v", err)
	}
	for _, role := range []string{"acme-b", "acme-a"} {
		if err := r.PutAssociation(ctx, meta.Association{Tenant: "acme", Role: role, IdentityKey: "oidc#https://idp/#" + role}); err != nil {
			t.Fatal(err)
		}
	}
	as, err := r.Associations(ctx, "acme")
	if err != nil || len(as) != 2 || as[0].Role != "acme-a" {
		t.Fatalf("associations: %+v %v", as, err)
	}
	// Records at the same instant keep their order.
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		if err := r.AppendAudit(ctx, meta.AuditRecord{Time: at, Action: fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := r.Audit(ctx, 10, func(meta.AuditRecord) bool { return true })
	if err != nil || len(recs) != 3 || recs[0].Action != "a2" || recs[2].Action != "a0" {
		t.Fatalf("audit: %+v %v", recs, err)
	}
}

// next returns the next event, failing the test when none comes in 10 s.
func next(t *testing.T, events <-chan meta.Event) meta.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return meta.Event{}
}

// testSchemaRecords: versions of a topic's schema are numbered 0, 1, ...
// without gaps or duplicates even when written concurrently; a partition
// shares its partitioned topic's versions; the same hash is one version.
func testSchemaRecords(t *testing.T, s meta.Store) {
	r := &meta.Resources{Store: s}
	ctx := context.Background()
	base, err := naming.ParseTopic("persistent://public/default/schemas")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := naming.ParseTopic("persistent://public/default/schemas-other")
	const writers = 8
	var wg sync.WaitGroup
	versions := make([]int64, writers)
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := meta.SchemaRecord{Type: "STRING", Hash: fmt.Sprint("h", i)}
			versions[i], _, errs[i] = r.AddSchema(ctx, base.Partition(i%3), rec, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i) {
			t.Fatalf("concurrent versions %v, want 0..%d", versions, writers-1)
		}
	}
	v, created, err := r.AddSchema(ctx, base, meta.SchemaRecord{Type: "STRING", Hash: "h3"}, func([]meta.SchemaRecord) error {
		return errors.New("check must not run for a known schema")
	})
	if err != nil || created {
		t.Fatalf("re-adding a known hash: %d %v %v", v, created, err)
	}
	if _, _, err := r.AddSchema(ctx, other, meta.SchemaRecord{Type: "INT8", Hash: "x"}, nil); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	if _, _, err := r.AddSchema(ctx, base, meta.SchemaRecord{Hash: "new"}, func([]meta.SchemaRecord) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refused by check: %v", err)
	}
	// A deletion marker ends the live history; versions go on after it.
	if v, _, err := r.AddSchema(ctx, base, meta.SchemaRecord{Deleted: true}, nil); err != nil || v != writers {
		t.Fatalf("marker: %d %v", v, err)
	}
	all, err := r.SchemaVersions(ctx, base)
	if err != nil || len(all) != writers+1 || len(meta.Live(all)) != 0 {
		t.Fatalf("versions after marker: %d live %d %v", len(all), len(meta.Live(all)), err)
	}
	if v, created, err := r.AddSchema(ctx, base, meta.SchemaRecord{Type: "STRING", Hash: "h0"}, nil); err != nil || !created || v != writers+1 {
		t.Fatalf("re-adding after the marker: %d %v %v", v, created, err)
	}
	if rec, err := r.SchemaVersion(ctx, base.Partition(1), 2); err != nil || rec.Version != 2 {
		t.Fatalf("version 2 through a partition: %+v %v", rec, err)
	}
	if err := r.DeleteSchemas(ctx, base.Partition(0)); err != nil {
		t.Fatal(err)
	}
	if all, err := r.SchemaVersions(ctx, base); err != nil || len(all) != 0 {
		t.Fatalf("after delete: %v %v", all, err)
	}
	if all, err := r.SchemaVersions(ctx, other); err != nil || len(all) != 1 {
		t.Fatalf("a topic whose name extends the deleted one's lost its schema: %v %v", all, err)
	}
	// Deleting a namespace deletes its topics' schemas.
	if err := r.CreateTenant(ctx, "st", meta.TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	ns := naming.Namespace{Tenant: "st", Name: "ns"}
	if err := r.CreateNamespace(ctx, ns, meta.Policies{}); err != nil {
		t.Fatal(err)
	}
	inNS, _ := naming.ParseTopic("persistent://st/ns/t")
	if _, _, err := r.AddSchema(ctx, inNS, meta.SchemaRecord{Hash: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if all, err := r.SchemaVersions(ctx, inNS); err != nil || len(all) != 0 {
		t.Fatalf("schemas of a deleted namespace: %v %v", all, err)
	}
}
