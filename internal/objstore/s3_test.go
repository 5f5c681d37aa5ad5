package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

func TestS3AgainstVersityGateway(t *testing.T) {
	gw := s3test.Start(t)
	reg := prometheus.NewRegistry()
	s := gw.Bucket(t, "objstore-test", objstore.NewMetrics(reg))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	data := []byte("0123456789abcdefghij")
	if err := s.Put(ctx, "a/b/1", data, true); err != nil {
		t.Fatal(err)
	}
	// Write-once: a second conditional put is refused, the data kept.
	if err := s.Put(ctx, "a/b/1", []byte("other"), true); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second write-once put: %v, want ErrExists", err)
	}
	if err := s.Put(ctx, "a/b/2", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "a/b/1", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q %v", got, err)
	}
	if got, err := s.Get(ctx, "a/b/1", 5, 4); err != nil || string(got) != "5678" {
		t.Fatalf("ranged get: %q %v", got, err)
	}
	if got, err := s.Get(ctx, "a/b/1", 16, -1); err != nil || string(got) != "ghij" {
		t.Fatalf("get from offset: %q %v", got, err)
	}
	if _, err := s.Get(ctx, "a/b/missing", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	list, err := s.List(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []objstore.ObjectInfo{{Key: "a/b/1", Size: 20}, {Key: "a/b/2", Size: 1}}; !slices.Equal(list, want) {
		t.Fatalf("list: %v, want %v", list, want)
	}
	if err := s.Delete(ctx, "a/b/1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/b/1"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if _, err := s.Get(ctx, "a/b/1", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if n := testutil.CollectAndCount(reg, "mb_objstore_requests_total"); n != 4 {
		t.Fatalf("%d request series, want one per op", n)
	}
	// The refused write-once put and the get of a missing key are answers, not errors.
	if n := testutil.CollectAndCount(reg, "mb_objstore_errors_total"); n != 0 {
		t.Fatalf("%d error series, want none", n)
	}
}

// TestS3BackgroundPut: a put marked as background work (its connection
// writes on a low-priority thread, in several writes for an object this
// large) stores the same bytes and keeps write-once.
func TestS3BackgroundPut(t *testing.T) {
	gw := s3test.Start(t)
	s := gw.Bucket(t, "background-test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bg := pace.NewContext(ctx, pace.DefaultCPU)
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for i := range 3 { // the connection is reused
		key := fmt.Sprintf("big-%d", i)
		if err := s.Put(bg, key, data, true); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, key, 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %s: %d bytes, %v", key, len(got), err)
		}
	}
	if err := s.Put(bg, "big-0", []byte("other"), true); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second write-once put: %v, want ErrExists", err)
	}
}

func TestS3CallEndsWithItsContext(t *testing.T) {
	gw := s3test.Start(t)
	s := gw.Bucket(t, "deadline-test", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "k", []byte("v"), false); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a canceled context: %v", err)
	}
}

func TestFaultyIsReplayable(t *testing.T) {
	run := func() []string {
		gw := memStore{m: map[string][]byte{}}
		f := objstore.NewFaulty(gw, objstore.Faults{Seed: 42, FailRate: 0.3, TornRate: 0.2, SlowRate: 0.2, SlowDelay: time.Millisecond})
		ctx := context.Background()
		for i := range 50 {
			key := string(rune('a' + i%26))
			f.Put(ctx, key, []byte("value"), false)
			f.Get(ctx, key, 0, -1)
		}
		return f.Log()
	}
	a, b := run(), run()
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("fault logs differ or empty:\n%v\n%v", a, b)
	}
}

func TestFaultyTornPutStoresAPrefix(t *testing.T) {
	m := memStore{m: map[string][]byte{}}
	f := objstore.NewFaulty(m, objstore.Faults{Seed: 1, TornRate: 1})
	if err := f.Put(context.Background(), "k", []byte("0123456789"), true); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("torn put: %v", err)
	}
	if string(m.m["k"]) != "01234" {
		t.Fatalf("stored %q, want the first half", m.m["k"])
	}
	f.SetFaults(objstore.Faults{})
	f.SetDown(true)
	if _, err := f.Get(context.Background(), "k", 0, -1); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("get while down: %v", err)
	}
}

// memStore is a map, to test the fault wrapper alone.
type memStore struct{ m map[string][]byte }

func (s memStore) Put(_ context.Context, k string, d []byte, _ bool) error {
	s.m[k] = bytes.Clone(d)
	return nil
}
func (s memStore) Get(_ context.Context, k string, _, _ int64) ([]byte, error) {
	d, ok := s.m[k]
	if !ok {
		return nil, objstore.ErrNotFound
	}
	return d, nil
}
func (s memStore) Delete(_ context.Context, k string) error { delete(s.m, k); return nil }
func (s memStore) List(context.Context, string) ([]objstore.ObjectInfo, error) {
	return nil, nil
}
