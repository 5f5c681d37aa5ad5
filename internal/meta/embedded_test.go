package meta

import (
	"context"
	"errors"
	"testing"

	"github.com/messagebus/messagebus/internal/naming"
)

func openTest(t *testing.T) *Embedded {
	t.Helper()
	s, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCompareAndSet(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	v, err := s.Put(ctx, "/a", []byte("1"), NotExists)
	if err != nil || v != 1 {
		t.Fatalf("create: %d %v", v, err)
	}
	if _, err := s.Put(ctx, "/a", []byte("x"), NotExists); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := s.Put(ctx, "/a", []byte("2"), 5); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("stale version: %v", err)
	}
	if v, err = s.Put(ctx, "/a", []byte("2"), 1); err != nil || v != 2 {
		t.Fatalf("update: %d %v", v, err)
	}
	kv, err := s.Get(ctx, "/a")
	if err != nil || string(kv.Value) != "2" || kv.Version != 2 {
		t.Fatalf("get: %+v %v", kv, err)
	}
	if err := s.Delete(ctx, "/a", 1); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("delete stale: %v", err)
	}
	if err := s.Delete(ctx, "/a", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestListAndWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openTest(t)
	events := s.Watch(ctx, "/p/")
	for _, k := range []string{"/p/b", "/p/a", "/q/z", "/p/c/d"} {
		if _, err := s.Put(ctx, k, []byte(k), AnyVersion); err != nil {
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
	}
	if len(keys) != 3 || keys[0] != "/p/a" || keys[1] != "/p/b" || keys[2] != "/p/c/d" {
		t.Fatalf("list: %v", keys)
	}
	for _, want := range []string{"/p/b", "/p/a", "/p/c/d"} {
		ev := <-events
		if ev.Type != EventPut || ev.KV.Key != want {
			t.Fatalf("event %+v, want put %s", ev, want)
		}
	}
}

func TestBootstrapAndPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Resources{Store: s}
	if err := r.Bootstrap(ctx, "standalone", ClusterData{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Bootstrap(ctx, "standalone", ClusterData{}); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	tp, _ := naming.ParseTopic("persistent://public/default/orders")
	if err := r.PutPartitionedTopic(ctx, tp, 4, true); err != nil {
		t.Fatal(err)
	}
	if err := r.PutPartitionedTopic(ctx, tp, 4, true); !errors.Is(err, ErrExists) {
		t.Fatalf("recreate partitioned: %v", err)
	}
	s.Close()

	s, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r = &Resources{Store: s}
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
	if err := r.CreateNamespace(ctx, naming.Namespace{Tenant: "nope", Name: "x"}, Policies{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("namespace in missing tenant: %v", err)
	}
}
