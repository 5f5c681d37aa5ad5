// Package vaulttest is a minimal in-test HTTP server that implements only
// the parts of Vault's KV version 2 API that MessageBus uses: write and
// read of /v1/<mount>/data/<path>, with Vault's JSON shapes (data,
// metadata, versions), its 404 for a missing secret and its 403 for a bad
// X-Vault-Token. Neither Vault nor OpenBao can be installed where the tests
// run, so this stands in for them; it is not a general Vault fake.
//
// It depends only on the standard library and testing.
package vaulttest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake Vault with KV v2 mounted at every "<mount>/" path.
type Server struct {
	// URL is the server's address, for vault.Config.Address.
	URL string

	srv   *httptest.Server
	token string

	mu      sync.Mutex
	secrets map[string][]version // "<mount>/<path>" → versions, oldest first
	writes  int
}

type version struct {
	data    map[string]any
	created time.Time
}

// New starts a server that accepts only token and is closed when the test
// ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	s := &Server{token: token, secrets: map[string][]version{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server early, to test a Vault that is down.
func (s *Server) Close() { s.srv.Close() }

// Data returns the current version's data at path, given as
// "<mount>/<path>" (such as "secret/messagebus/t/r/x"); nil when there is
// none.
func (s *Server) Data(path string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.secrets[strings.Trim(path, "/")]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1].data
}

// Version returns the current version number at "<mount>/<path>"; 0 when
// there is none.
func (s *Server) Version(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.secrets[strings.Trim(path, "/")])
}

// Writes is the number of successful writes.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Vault-Token")), []byte(s.token)) != 1 {
		// Vault answers a missing, unknown or expired token like this.
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	mount, path, ok2 := strings.Cut(rest, "/data/")
	if !ok || !ok2 || mount == "" || strings.Trim(path, "/") == "" {
		writeErrors(w, http.StatusNotFound)
		return
	}
	key := mount + "/" + strings.Trim(path, "/")

	switch r.Method {
	case http.MethodGet:
		s.read(w, r, key)
	case http.MethodPost, http.MethodPut:
		s.write(w, r, key)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
	}
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, key string) {
	s.mu.Lock()
	vs := s.secrets[key]
	s.mu.Unlock()
	n := len(vs)
	if q := r.URL.Query().Get("version"); q != "" && q != "0" {
		v, err := strconv.Atoi(q)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "invalid version")
			return
		}
		if v > n {
			writeErrors(w, http.StatusNotFound)
			return
		}
		n = v
	}
	if n == 0 {
		// KV v2 answers a path that was never written with an empty
		// error list.
		writeErrors(w, http.StatusNotFound)
		return
	}
	v := vs[n-1]
	writeResponse(w, map[string]any{
		"data":     v.data,
		"metadata": metadata(v, n),
	})
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, key string) {
	var body struct {
		Data    map[string]any `json:"data"`
		Options map[string]any `json:"options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, "error parsing JSON")
		return
	}
	if body.Data == nil {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	s.mu.Lock()
	v := version{data: body.Data, created: time.Now().UTC()}
	if cas, ok := body.Options["cas"].(float64); ok && int(cas) != len(s.secrets[key]) {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
		return
	}
	s.secrets[key] = append(s.secrets[key], v)
	n := len(s.secrets[key])
	s.writes++
	s.mu.Unlock()
	writeResponse(w, metadata(v, n))
}

func metadata(v version, n int) map[string]any {
	return map[string]any{
		"created_time":    v.created.Format(time.RFC3339Nano),
		"custom_metadata": nil,
		"deletion_time":   "",
		"destroyed":       false,
		"version":         n,
	}
}

func writeResponse(w http.ResponseWriter, data map[string]any) {
	writeJSON(w, http.StatusOK, map[string]any{
		"request_id":     fmt.Sprintf("%016x", time.Now().UnixNano()),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       nil,
		"auth":           nil,
		"mount_type":     "kv",
	})
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
