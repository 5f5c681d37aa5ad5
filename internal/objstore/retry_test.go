package objstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/objstore"
)

// TestS3RetriesServerErrors: 503 (SlowDown) and 500 answers are retried with
// backoff; a 4xx is not. The server here only answers status codes: the S3
// behaviour itself is tested against the Versity gateway.
func TestS3RetriesServerErrors(t *testing.T) {
	var calls atomic.Int32
	var failFirst atomic.Int32
	failFirst.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/b/forbidden":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<Error><Code>AccessDenied</Code><Message>no</Message></Error>`))
		case n <= failFirst.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`<Error><Code>SlowDown</Code><Message>slow down</Message></Error>`))
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := objstore.NewS3(ctx, objstore.S3Options{Bucket: "b", Endpoint: srv.URL, PathStyle: true,
		MaxAttempts: 4, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", []byte("v"), true); err != nil {
		t.Fatalf("put after two 503s: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (two retried 503s)", n)
	}
	calls.Store(0)
	failFirst.Store(0)
	if err := s.Put(ctx, "forbidden", []byte("v"), false); err == nil {
		t.Fatal("put refused with 403 succeeded")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests for a 403, want 1 (not retried)", n)
	}
}
