package admin

import (
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
)

// Namespace offload policies, as Pulsar's (GET, PUT or POST, DELETE):
//
//	.../namespaces/{t}/{ns}/offloadThreshold           bytes; -1 when unset (never)
//	.../namespaces/{t}/{ns}/offloadThresholdInSeconds  seconds; -1 when unset (never)
//	.../namespaces/{t}/{ns}/offloadDeletionLagMs       ms; 204 when unset (the broker's --offload-deletion-lag-ms)
func (s *Server) offloadPolicyRoutes(m *http.ServeMux) {
	ns := "/admin/v2/namespaces/{tenant}/{ns}/"
	s.int64Policy(m, ns+"offloadThreshold", "a number of bytes", -1, -1,
		func(p *meta.Policies) **int64 { return &p.OffloadThreshold })
	s.int64Policy(m, ns+"offloadThresholdInSeconds", "a number of seconds", -1, -1,
		func(p *meta.Policies) **int64 { return &p.OffloadThresholdInSeconds })
	s.int64Policy(m, ns+"offloadDeletionLagMs", "a number of milliseconds", 0, nil,
		func(p *meta.Policies) **int64 { return &p.OffloadDeletionLagMs })
}

// int64Policy registers an optional int64 namespace policy accepting values
// >= least; unset reads as unsetValue (nil: 204 No Content).
func (s *Server) int64Policy(m *http.ServeMux, path, what string, least int64, unsetValue any, field func(*meta.Policies) **int64) {
	get := func(p *meta.Policies) any {
		if v := *field(p); v != nil {
			return *v
		}
		return unsetValue
	}
	set := func(p *meta.Policies, body []byte, remove bool) error {
		if remove {
			*field(p) = nil
			return nil
		}
		var n int64
		if err := decode(body, &n, what); err != nil {
			return err
		}
		if n < least && strings.HasSuffix(path, "/offloadThresholdInSeconds") {
			return errorf(http.StatusPreconditionFailed, "Invalid value for offloadThresholdInSecond") // Pulsar's words
		}
		if n < least {
			return errorf(http.StatusPreconditionFailed, "%s must be %d or more, not %d", path[len("/admin/v2/namespaces/{tenant}/{ns}/"):], least, n)
		}
		*field(p) = &n
		return nil
	}
	s.optionalPolicy(m, path, what, get, set)
	m.HandleFunc("PUT "+path, func(w http.ResponseWriter, r *http.Request) {
		var raw rawBody
		if !requireBody(w, r, maxValueBytes, &raw, what) {
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error { return set(p, raw, false) })
	})
}
