package admin

import (
	"net/http"

	"github.com/messagebus/messagebus/internal/meta"
)

// Namespace offloadPolicies, as Pulsar's:
//
//	GET    .../namespaces/{t}/{ns}/offloadPolicies        OffloadPoliciesImpl; 204 when none
//	POST   .../namespaces/{t}/{ns}/offloadPolicies        body: OffloadPoliciesImpl
//	DELETE .../namespaces/{t}/{ns}/removeOffloadPolicies  (and DELETE .../offloadPolicies)
//
// As Pulsar does, a POST copies the thresholds it sets into the namespace's
// offload_threshold, offload_threshold_in_seconds and
// offload_deletion_lag_ms, which are what the broker applies; GET answers
// the stored record with those three as they are now in the namespace.
func (s *Server) offloadNamespacePolicyRoutes(m *http.ServeMux) {
	ns := "/admin/v2/namespaces/{tenant}/{ns}/"
	const what = "offload policies (a JSON object)"
	m.HandleFunc("GET "+ns+"offloadPolicies", func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.namespacePolicies(w, r)
		if !ok {
			return
		}
		if p.OffloadPolicies == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		op := *p.OffloadPolicies
		op.AutoTriggerSizeThresholdBytes = nil
		op.ThresholdInBytes = p.OffloadThreshold
		op.ThresholdInSeconds = p.OffloadThresholdInSeconds
		op.DeletionLagInMillis = p.OffloadDeletionLagMs
		writeJSON(w, http.StatusOK, op)
	})
	m.HandleFunc("POST "+ns+"offloadPolicies", func(w http.ResponseWriter, r *http.Request) {
		var raw rawBody
		if !requireBody(w, r, maxValueBytes, &raw, what) {
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error {
			var op meta.OffloadPolicies
			if err := decode(raw, &op, what); err != nil {
				return err
			}
			if err := validateOffloadPolicies(&op); err != nil {
				return err
			}
			op.AutoTriggerSizeThresholdBytes = nil
			if op.ThresholdInBytes != nil {
				p.OffloadThreshold = op.ThresholdInBytes
			}
			if op.ThresholdInSeconds != nil {
				p.OffloadThresholdInSeconds = op.ThresholdInSeconds
			}
			if op.DeletionLagInMillis != nil {
				p.OffloadDeletionLagMs = op.DeletionLagInMillis
			}
			p.OffloadPolicies = &op
			return nil
		})
	})
	remove := func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *meta.Policies) error {
			// The thresholds the record set go with it (back to unset:
			// never, and the broker's deletion lag).
			if op := p.OffloadPolicies; op != nil {
				if op.ThresholdInBytes != nil {
					p.OffloadThreshold = nil
				}
				if op.ThresholdInSeconds != nil {
					p.OffloadThresholdInSeconds = nil
				}
				if op.DeletionLagInMillis != nil {
					p.OffloadDeletionLagMs = nil
				}
			}
			p.OffloadPolicies = nil
			return nil
		})
	}
	m.HandleFunc("DELETE "+ns+"offloadPolicies", remove)
	m.HandleFunc("DELETE "+ns+"removeOffloadPolicies", remove)
}
