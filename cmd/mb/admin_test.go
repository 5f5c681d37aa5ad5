package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// runRoot runs the mb command tree in-process.
func runRoot(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), err
}

// fakeAdmin answers like our server: JSON bodies and {"reason"} errors, and
// Go's plain-text 404/405 for routes it does not have.
func fakeAdmin(t *testing.T) (url string, auth func() []string) {
	var mu sync.Mutex
	var seen []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v2/tenants", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`["zeta","alpha"]` + "\n"))
	})
	mux.HandleFunc("GET /admin/v2/tenants/{tenant}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PathValue("tenant") != "alpha" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"reason":"tenant ` + r.PathValue("tenant") + ` does not exist"}`))
			return
		}
		w.Write([]byte(`{"adminRoles":["r1"],"allowedClusters":["standalone"],"extra":{"n":1}}`))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestAdminListTableAndJSON(t *testing.T) {
	url, _ := fakeAdmin(t)
	out, err := runRoot(t, "admin", "--admin-url", url, "tenants", "list")
	if err != nil || out != "alpha\nzeta\n" {
		t.Fatalf("table: %q %v", out, err)
	}
	out, err = runRoot(t, "admin", "--admin-url", url, "-o", "json", "tenants", "list")
	if err != nil || out != "[\n  \"zeta\",\n  \"alpha\"\n]\n" {
		t.Fatalf("json keeps the server's order and shape: %q %v", out, err)
	}
}

func TestAdminJSONKeepsFieldsPulsaradminDrops(t *testing.T) {
	url, _ := fakeAdmin(t)
	out, err := runRoot(t, "admin", "--admin-url", url, "--output", "json", "tenants", "get", "alpha")
	if err != nil || !strings.Contains(out, `"extra": {`) {
		t.Fatalf("json: %q %v", out, err)
	}
	out, err = runRoot(t, "admin", "--admin-url", url, "tenants", "get", "alpha")
	if err != nil || !strings.Contains(out, "extra.n") || !strings.Contains(out, "adminRoles") {
		t.Fatalf("table: %q %v", out, err)
	}
}

func TestAdminErrorIsTheServersReason(t *testing.T) {
	url, _ := fakeAdmin(t)
	_, err := runRoot(t, "admin", "--admin-url", url, "tenants", "get", "nobody")
	if err == nil || err.Error() != "tenant nobody does not exist" {
		t.Fatalf("got %v", err)
	}
	_, err = runRoot(t, "admin", "--admin-url", url, "tenants", "delete", "alpha")
	if err == nil || err.Error() != "DELETE /admin/v2/tenants/alpha: not supported by the server (HTTP 405)" {
		t.Fatalf("missing route: %v", err)
	}
	_, err = runRoot(t, "admin", "--admin-url", url, "namespaces", "topics", "alpha/ns")
	if err == nil || !strings.Contains(err.Error(), "not supported by the server (HTTP 404)") {
		t.Fatalf("missing route: %v", err)
	}
}

func TestAdminSendsBearerToken(t *testing.T) {
	url, seen := fakeAdmin(t)
	if _, err := runRoot(t, "admin", "--admin-url", url, "--auth-token", "s3cret", "tenants", "list"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	if _, err := runRoot(t, "admin", "--admin-url", url, "--auth-token-file", file, "tenants", "list"); err != nil {
		t.Fatal(err)
	}
	got := seen()
	if len(got) != 2 || got[0] != "Bearer s3cret" || got[1] != "Bearer from-file" {
		t.Fatalf("Authorization headers %q", got)
	}
}

func TestAdminRejectsBadArguments(t *testing.T) {
	url, seen := fakeAdmin(t)
	for _, args := range [][]string{
		{"--output", "yaml", "tenants", "list"},
		{"--admin-url", "localhost:8080", "tenants", "list"},
		{"--auth-token", "a", "--auth-token-file", "f", "tenants", "list"},
		{"namespaces", "policies", "no-slash"},
		{"namespaces", "set-retention", "t/ns", "--size", "10Q", "--time", "1h"},
		{"namespaces", "set-retention", "t/ns", "--size", "10M"},
		{"namespaces", "set-deduplication", "t/ns"},
		{"namespaces", "set-deduplication", "t/ns", "--enable", "--disable"},
		{"namespaces", "grant-permission", "t/ns", "--role", "r", "--actions", "write"},
		{"namespaces", "set-backlog-quota", "t/ns", "--policy", "producer_exception"},
		{"topics", "create-partitioned-topic", "t/ns/x", "-p", "0"},
		{"topics", "stats", "bogus://a/b/c"},
		{"topics", "stats", "a/b"},
		{"subscriptions", "reset-cursor", "t/ns/x", "-s", "s"},
		{"subscriptions", "skip", "t/ns/x", "-s", "s", "-n", "0"},
	} {
		full := append([]string{"admin", "--admin-url", url}, args...)
		if args[0] == "--admin-url" {
			full = append([]string{"admin"}, args...)
		}
		if _, err := runRoot(t, full...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("%d requests sent for invalid commands", n)
	}
}

func TestAdminCamelCaseFlagsOfPulsarAdmin(t *testing.T) {
	cmd := newSetMessageTTLCommand(&adminOptions{})
	if err := cmd.ParseFlags([]string{"--messageTTL", "1h"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := cmd.Flags().GetString("ttl"); v != "1h" {
		t.Fatalf("--messageTTL did not set --ttl: %q", v)
	}
}

func TestProduceRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"produce", "t"},
		{"produce", "t", "-m", "x", "--stdin"},
		{"produce", "t", "-m", "x", "-n", "0"},
		{"produce", "t", "--stdin", "-n", "2"},
		{"produce", "t", "-m", "x", "-p", "novalue"},
		{"produce", "t", "-m", "x", "--rate", "-1"},
		{"produce", "t", "-f", "/does/not/exist"},
		{"consume", "t"},
		{"consume", "t", "-s", "s", "-t", "broadcast"},
		{"consume", "t", "-s", "s", "--position", "middle"},
		{"consume", "t", "-s", "s", "--output", "xml"},
		{"consume", "t", "-s", "s", "-n", "-1"},
	} {
		if _, err := runRoot(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
