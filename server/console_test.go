package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/messagebus/messagebus/internal/console"
)

// The console's files are served without the admin API; every other request,
// and a console request that the admin API must refuse, goes to the API.
func TestConsoleMount(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := withConsole(api, console.Handler(), true)
	cases := []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/console/", "", http.StatusOK},
		{"HEAD", "/console/app.js", "", http.StatusOK},
		{"GET", "/console", "", http.StatusMovedPermanently},
		{"POST", "/console/app.js", "", http.StatusTeapot},
		{"GET", "/consolex", "", http.StatusTeapot},
		{"GET", "/console/../admin/v2/tenants", "", http.StatusTeapot},
		{"GET", "/console//x", "", http.StatusTeapot},
		{"GET", "/admin/v2/tenants", "", http.StatusTeapot},
		{"GET", "/console/", "Bearer x", http.StatusTeapot}, // plaintext credential: the API refuses it
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		r.URL.Path = c.path // keep ".." and "//" as a raw client could send them
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, rec.Code, c.want)
		}
	}
	rec := httptest.NewRecorder()
	withConsole(api, console.Handler(), false).ServeHTTP(rec, func() *http.Request {
		r := httptest.NewRequest("GET", "/console/", nil)
		r.Header.Set("Authorization", "Bearer x")
		return r
	}())
	if rec.Code != http.StatusOK {
		t.Errorf("credential allowed over plain HTTP: status %d", rec.Code)
	}
}
