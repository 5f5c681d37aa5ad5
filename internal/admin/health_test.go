package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
)

// TestHealth: 503 until ready, then "ok", or "degraded: ..." with the
// store's problems (still 200: the broker serves).
func TestHealth(t *testing.T) {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var ready atomic.Bool
	var problems atomic.Pointer[[]string]
	problems.Store(&[]string{})
	srv := httptest.NewServer(New(Config{
		ClusterName: "standalone",
		Ready:       ready.Load,
		Health:      func() []string { return *problems.Load() },
	}, &meta.Resources{Store: md}))
	defer srv.Close()
	check := func(wantStatus int, wantBody string) {
		t.Helper()
		for _, path := range []string{"/admin/v2/brokers/health", "/healthz"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus || (wantBody != "" && string(body) != wantBody) {
				t.Fatalf("GET %s = %d %q, want %d %q", path, resp.StatusCode, body, wantStatus, wantBody)
			}
		}
	}
	check(http.StatusServiceUnavailable, "")
	ready.Store(true)
	check(http.StatusOK, "ok")
	problems.Store(&[]string{"disk full: 1.0 MiB free in /d, below the minimum of 2.0 MiB; appends refused until space is freed", "other"})
	check(http.StatusOK, "degraded: disk full: 1.0 MiB free in /d, below the minimum of 2.0 MiB; appends refused until space is freed; other")
	problems.Store(&[]string{})
	check(http.StatusOK, "ok")
}
