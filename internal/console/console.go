// Package console serves the web console: static assets embedded in the
// binary, served under /console/ on the admin HTTP port. The assets hold no
// secret and need no privilege; the page calls the admin API (and the access
// plane's /access/v1/) with the user's own token, so every decision about
// what the user may see or do is the server's.
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// cspFormat allows nothing but the console's own files and calls to its own
// origin (plus, for OIDC sign-in, the identity provider's): no inline script
// or style, no framing, no other origin.
const cspFormat = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'%s; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config configures the console.
type Config struct {
	// OIDCIssuer, when set, is the access plane's login issuer: the page
	// fetches its discovery document and exchanges the authorization code at
	// its token endpoint, so its origin is added to the CSP's connect-src.
	OIDCIssuer string
}

// Handler serves the console's files with strict security headers, without
// OIDC sign-in.
func Handler() http.Handler {
	h, _ := New(Config{})
	return h
}

// New serves the console's files with strict security headers.
func New(cfg Config) (http.Handler, error) {
	extra := ""
	if cfg.OIDCIssuer != "" {
		origin, err := issuerOrigin(cfg.OIDCIssuer)
		if err != nil {
			return nil, err
		}
		extra = " " + origin
	}
	csp := fmt.Sprintf(cspFormat, extra)
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(strings.TrimSuffix(Prefix, "/"), http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// Small files: always revalidated, so an upgraded binary's page is
		// never mixed with an old script.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		files.ServeHTTP(w, r)
	}), nil
}

// issuerOrigin is the scheme://host[:port] of an issuer URL, refused unless
// it is a plain http(s) URL (it goes into a CSP header).
func issuerOrigin(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(u.Host, " ;,'\"") {
		return "", fmt.Errorf("console: OIDC issuer %q is not an http(s) URL", issuer)
	}
	return u.Scheme + "://" + u.Host, nil
}
