package server

import (
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/console"
)

// withConsole mounts the web console beside the admin API on the same port.
// The console sits above the admin API (it is one of its clients), so it is
// assembled here rather than inside internal/admin. Its static files are
// public: they hold nothing secret, and every call the page makes carries the
// user's token to the admin API, which decides. Anything else under
// /console/ (another method, a path with ".." or "//") goes to the admin API,
// where it is an unknown path for authorized callers only.
func withConsole(api http.Handler, ui http.Handler, refusePlaintextCredentials bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A credential sent over plain HTTP is refused by the admin API
		// whatever the path, so the console must not bypass that rule.
		plaintextCredential := refusePlaintextCredentials && r.TLS == nil && r.Header.Get("Authorization") != ""
		if isConsoleFile(r) && !plaintextCredential {
			ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// isConsoleFile reports whether r asks for one of the console's static files.
func isConsoleFile(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	if p != strings.TrimSuffix(console.Prefix, "/") && !strings.HasPrefix(p, console.Prefix) {
		return false
	}
	return !strings.Contains(p, "..") && !strings.Contains(p, "//")
}

// consoleHandler is the console, with OIDC sign-in when the access plane
// offers human login (its issuer's origin joins the page's CSP).
func (s *Server) consoleHandler() http.Handler {
	var cfg console.Config
	if o := s.opts.Access; s.access != nil && len(o.OIDCIssuers) > 0 && o.OIDCLoginClientID != "" {
		cfg.OIDCIssuer = o.OIDCIssuers[0]
	}
	h, err := console.New(cfg)
	if err != nil {
		s.log.Warn("web console: OIDC sign-in off", "err", err)
		return console.Handler()
	}
	return h
}
