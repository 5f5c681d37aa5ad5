package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesAssetsWithStrictHeaders(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/console/", "/console/app.js", "/console/api.js", "/console/ui.js", "/console/style.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", p, rec.Code)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("%s: CSP %q", p, csp)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: no nosniff", p)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/console/" {
		t.Fatalf("/console: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

// The page must run under its own CSP: no inline script or style, no
// other origin.
func TestNoInlineScriptOrExternalOrigin(t *testing.T) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if strings.Contains(html, "<script>") || strings.Contains(html, " style=") || strings.Contains(html, "onclick=") {
		t.Fatal("index.html has inline script or style")
	}
	ents, _ := assets.ReadDir("assets")
	for _, e := range ents {
		b, _ := assets.ReadFile("assets/" + e.Name())
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Fatalf("%s refers to another origin", e.Name())
		}
		if strings.Contains(string(b), "localStorage") {
			t.Fatalf("%s uses localStorage", e.Name())
		}
	}
}

// With OIDC sign-in, the provider's origin (and only it) joins connect-src.
func TestOIDCIssuerInCSP(t *testing.T) {
	h, err := New(Config{OIDCIssuer: "https://idp.example.com/realms/x"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://idp.example.com;") {
		t.Fatalf("CSP %q", csp)
	}
	for _, bad := range []string{"idp.example.com", "ftp://idp", "https://a b", "https://x;script-src *", "https://u@idp"} {
		if _, err := New(Config{OIDCIssuer: bad}); err == nil {
			t.Errorf("issuer %q accepted", bad)
		}
	}
}
