package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/messagebus/messagebus/internal/naming"
)

// Long-running topic processes (compaction, offload): started on every
// partition of a topic, their status merged over the partitions, as Pulsar
// answers for a partitioned topic.

// startOnPartitions runs start on each partition of t (t itself when not
// partitioned) and answers 204, or 409 with busy when one was already
// running (errors.Is running) and the others started. In cluster mode a
// partition another broker serves is started there: r (PUT .../op, its
// body) is replayed on the partition at its owner, whose 409 counts as
// running (cluster_fanout.go).
func (s *Server) startOnPartitions(w http.ResponseWriter, r *http.Request, t naming.Topic, op string, running error, busy string,
	start func(ctx context.Context, p naming.Topic) error) {
	ts, err := s.partitions(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	isBusy := false
	for _, p := range ts {
		var err error
		if p == t {
			err = start(r.Context(), p)
		} else if remote, rerr := s.callPartitionOwner(r, p, r.Method, op, true, nil); remote {
			if remoteStatus(rerr, http.StatusConflict) {
				rerr = running
			}
			err = rerr
		} else {
			err = start(r.Context(), p)
		}
		if errors.Is(err, running) {
			isBusy = true
			continue
		}
		if err != nil {
			s.fail(w, err)
			return
		}
	}
	if isBusy {
		writeError(w, http.StatusConflict, busy)
		return
	}
	noContent(w)
}

// processRank orders Pulsar's LongRunningProcessStatus values: a merged
// status is the worst of the partitions'.
var processRank = map[string]int{"SUCCESS": 0, "NOT_RUN": 1, "RUNNING": 2, "ERROR": 3}

// processStatus is a merged status: the worst status and the first error.
type processStatus struct {
	status, lastError string
}

// add merges partition i's status and error.
func (m *processStatus) add(i int, status, lastError string) {
	if i == 0 || processRank[status] > processRank[m.status] {
		m.status = status
	}
	if m.lastError == "" {
		m.lastError = lastError
	}
}
