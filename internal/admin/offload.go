package admin

import (
	"context"
	"net/http"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/naming"
)

// Offload endpoints, as Pulsar's:
//
//	PUT .../{topic}/offload   body: a MessageId {"ledgerId","entryId"}; starts
//	                          offloading the entries before it: 204; 409 while
//	                          one runs; 400 when tiered storage is off
//	GET .../{topic}/offload   OffloadProcessStatus {"status","lastError",
//	                          "firstUnoffloadedMessage"}
//
// On a partitioned topic both act on every partition (the message id's
// entry applies to each); the status is the most telling one (ERROR, then
// RUNNING, NOT_RUN, SUCCESS) with the first error met.

type offloadBroker interface {
	Offload(ctx context.Context, name naming.Topic, ledgerID, entryID int64) error
	OffloadStatus(ctx context.Context, name naming.Topic) (broker.OffloadStatus, error)
}

func (s *Server) offloadRoutes(m *http.ServeMux, d string) {
	if d != naming.Persistent {
		return
	}
	topic := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}/"
	m.HandleFunc("PUT "+topic+"offload", s.topic(d, s.triggerOffload))
	m.HandleFunc("GET "+topic+"offload", s.topic(d, s.offloadStatus))
	s.topicPolicy(m, d, topic+"offloadPolicies", offloadPoliciesPolicy)
}

func (s *Server) offloadBroker(w http.ResponseWriter) (offloadBroker, bool) {
	b, ok := s.broker(w)
	if !ok {
		return nil, false
	}
	ob, ok := b.(offloadBroker)
	if !ok {
		writeError(w, http.StatusNotImplemented, "offload is not supported by this broker")
	}
	return ob, ok
}

// offloadRequestJSON is Pulsar's MessageIdImpl as pulsaradmin sends it.
type offloadRequestJSON struct {
	LedgerID       *int64 `json:"ledgerId"`
	EntryID        *int64 `json:"entryId"`
	PartitionIndex int    `json:"partitionIndex"`
}

func (s *Server) triggerOffload(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	var id offloadRequestJSON
	if !requireBody(w, r, maxValueBytes, &id, `a message id {"ledgerId":..,"entryId":..}`) {
		return
	}
	if id.LedgerID == nil || id.EntryID == nil {
		writeError(w, http.StatusBadRequest, `request body must be a message id {"ledgerId":..,"entryId":..}`)
		return
	}
	b, ok := s.offloadBroker(w)
	if !ok {
		return
	}
	s.startOnPartitions(w, r, t, "offload", broker.ErrOffloadRunning, "Offload already running", func(ctx context.Context, p naming.Topic) error {
		return b.Offload(ctx, p, *id.LedgerID, *id.EntryID)
	})
}

type offloadMessageIDJSON struct {
	LedgerID       int64 `json:"ledgerId"`
	EntryID        int64 `json:"entryId"`
	PartitionIndex int   `json:"partitionIndex"`
}

// offloadStatusJSON is Pulsar's OffloadProcessStatus.
type offloadStatusJSON struct {
	Status                  string               `json:"status"`
	LastError               string               `json:"lastError"`
	FirstUnoffloadedMessage offloadMessageIDJSON `json:"firstUnoffloadedMessage"`
}

func (s *Server) offloadStatus(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.offloadBroker(w)
	if !ok {
		return
	}
	ts, err := s.partitions(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	var merged processStatus
	var out offloadStatusJSON
	for i, p := range ts {
		if p != t { // a partition: at its owner in cluster mode (cluster_fanout.go)
			var st offloadStatusJSON
			if remote, err := s.callPartitionOwner(r, p, http.MethodGet, "offload", false, &st); remote {
				if err != nil {
					s.fail(w, err)
					return
				}
				merged.add(i, st.Status, st.LastError)
				if i == 0 {
					out.FirstUnoffloadedMessage = st.FirstUnoffloadedMessage
				}
				continue
			}
		}
		st, err := b.OffloadStatus(r.Context(), p)
		if err != nil {
			s.fail(w, err)
			return
		}
		merged.add(i, st.Status, st.LastError)
		if i == 0 {
			out.FirstUnoffloadedMessage = offloadMessageIDJSON{LedgerID: st.LedgerID, EntryID: st.FirstUnoffloaded, PartitionIndex: -1}
		}
	}
	out.Status, out.LastError = merged.status, merged.lastError
	writeJSON(w, http.StatusOK, out)
}
