package admin

import (
	"context"
	"net/http"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Compaction endpoints, as Pulsar's:
//
//	PUT .../{topic}/compaction   start a compaction: 204; 409 while one runs
//	GET .../{topic}/compaction   LongRunningProcessStatus {"status","lastError"}
//
// On a partitioned topic both act on every partition; the status is the
// most telling of the partitions' (ERROR, then RUNNING, then NOT_RUN, else
// SUCCESS), with the first error met.
//
// The compaction threshold (bytes of backlog beyond the last compaction
// that trigger one; 0: never) is a namespace policy (GET, PUT or POST,
// DELETE .../namespaces/{t}/{ns}/compactionThreshold) and a topic policy
// (.../{topic}/compactionThreshold, see topic_policies.go).

// compactionBroker is what the compaction endpoints need of the broker.
type compactionBroker interface {
	Compact(ctx context.Context, name naming.Topic) error
	CompactionStatus(ctx context.Context, name naming.Topic) (broker.CompactionStatus, error)
}

func (s *Server) compactionRoutes(m *http.ServeMux, d string) {
	if d != naming.Persistent {
		return
	}
	topic := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}/"
	m.HandleFunc("PUT "+topic+"compaction", s.topic(d, s.triggerCompaction))
	m.HandleFunc("GET "+topic+"compaction", s.topic(d, s.compactionStatus))
	s.topicPolicy(m, d, topic+"compactionThreshold", compactionThresholdPolicy)
}

func (s *Server) compactionBroker(w http.ResponseWriter) (compactionBroker, bool) {
	b, ok := s.broker(w)
	if !ok {
		return nil, false
	}
	cb, ok := b.(compactionBroker)
	if !ok {
		writeError(w, http.StatusNotImplemented, "compaction is not supported by this broker")
	}
	return cb, ok
}

func (s *Server) triggerCompaction(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.compactionBroker(w)
	if !ok {
		return
	}
	s.startOnPartitions(w, r, t, "compaction", broker.ErrCompactionRunning, "Compaction already in progress", b.Compact)
}

// compactionStatusJSON is Pulsar's LongRunningProcessStatus.
type compactionStatusJSON struct {
	Status    string `json:"status"`
	LastError string `json:"lastError"`
}

func (s *Server) compactionStatus(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.compactionBroker(w)
	if !ok {
		return
	}
	ts, err := s.partitions(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	var out processStatus
	for i, p := range ts {
		if p != t { // a partition: at its owner in cluster mode (cluster_fanout.go)
			var st compactionStatusJSON
			if remote, err := s.callPartitionOwner(r, p, http.MethodGet, "compaction", false, &st); remote {
				if err != nil {
					s.fail(w, err)
					return
				}
				out.add(i, st.Status, st.LastError)
				continue
			}
		}
		st, err := b.CompactionStatus(r.Context(), p)
		if err != nil {
			s.fail(w, err)
			return
		}
		out.add(i, st.Status, st.LastError)
	}
	writeJSON(w, http.StatusOK, compactionStatusJSON{Status: out.status, LastError: out.lastError})
}

// compactionThresholdRoutes registers the namespace policy; Pulsar sets it
// with PUT (pulsaradmin) and POST is accepted too.
func (s *Server) compactionThresholdRoutes(m *http.ServeMux) {
	path := "/admin/v2/namespaces/{tenant}/{ns}/compactionThreshold"
	s.optionalPolicy(m, path, "a number of bytes", getCompactionThreshold, setCompactionThreshold)
	m.HandleFunc("PUT "+path, func(w http.ResponseWriter, r *http.Request) {
		var raw rawBody
		if !requireBody(w, r, maxValueBytes, &raw, "a number of bytes") {
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error { return setCompactionThreshold(p, raw, false) })
	})
}

func getCompactionThreshold(p *meta.Policies) any {
	if p.CompactionThreshold == nil {
		return nil
	}
	return *p.CompactionThreshold
}

func setCompactionThreshold(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.CompactionThreshold = nil
		return nil
	}
	n, err := decodeThreshold(body)
	if err != nil {
		return err
	}
	p.CompactionThreshold = &n
	return nil
}

func decodeThreshold(body []byte) (int64, error) {
	var n int64
	if err := decode(body, &n, "a number of bytes"); err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errorf(http.StatusPreconditionFailed, "compactionThreshold must be 0 or more, not %d", n)
	}
	return n, nil
}

var compactionThresholdPolicy = topicPolicy{
	what: "a number of bytes",
	get: func(tp *meta.TopicPolicies) any {
		if tp.CompactionThreshold == nil {
			return nil
		}
		return *tp.CompactionThreshold
	},
	applied: func(p *meta.Policies) any { return valueOr(p.CompactionThreshold, 0) },
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		n, err := decodeThreshold(body)
		if err != nil {
			return err
		}
		tp.CompactionThreshold = &n
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.CompactionThreshold = nil },
}
