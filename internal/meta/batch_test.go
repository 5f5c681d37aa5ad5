package meta_test

import (
	"context"
	"errors"
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
)

func TestEmbeddedBatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := meta.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/b/x", []byte("1"), meta.AnyVersion); err != nil {
		t.Fatal(err)
	}
	var b meta.Batcher = s
	// A stale expected version writes nothing.
	err = b.Batch(ctx, []meta.Op{{Key: "/b/y", Value: []byte("y"), Expected: meta.NotExists}, {Key: "/b/x", Value: []byte("2"), Expected: 7}})
	if !errors.Is(err, meta.ErrBadVersion) {
		t.Fatalf("stale batch: %v", err)
	}
	if _, err := s.Get(ctx, "/b/y"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a failed batch wrote /b/y: %v", err)
	}
	err = b.Batch(ctx, []meta.Op{{Key: "/b/y", Value: []byte("y"), Expected: meta.NotExists}, {Key: "/b/x", Value: []byte("2"), Expected: 1},
		{Key: "/b/x", Value: []byte("3"), Expected: 2}, {Key: "/b/gone", Delete: true, Expected: meta.AnyVersion}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = meta.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if kv, err := s.Get(ctx, "/b/x"); err != nil || string(kv.Value) != "3" || kv.Version != 3 {
		t.Fatalf("/b/x after reopen: %+v, %v", kv, err)
	}
	if kv, err := s.Get(ctx, "/b/y"); err != nil || string(kv.Value) != "y" || kv.Version != 1 {
		t.Fatalf("/b/y after reopen: %+v, %v", kv, err)
	}
}
