package admin

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/naming"
)

func (s *Server) subscriptionRoutes(m *http.ServeMux, d string) {
	topic := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}"
	sub := topic + "/subscription/{sub}"
	m.HandleFunc("GET "+topic+"/subscriptions", s.topic(d, s.listSubscriptions))
	m.HandleFunc("PUT "+sub, s.topic(d, s.createSubscription))
	m.HandleFunc("DELETE "+sub, s.topic(d, s.deleteSubscription))
	m.HandleFunc("POST "+sub+"/skip/{n}", s.single(d, s.skipMessages))
	m.HandleFunc("POST "+sub+"/skip_all", s.topic(d, s.clearBacklog))
	m.HandleFunc("POST "+sub+"/resetcursor", s.topic(d, s.resetCursor))
	m.HandleFunc("POST "+sub+"/resetcursor/{timestamp}", s.topic(d, s.resetCursorToTime))
	m.HandleFunc("POST "+sub+"/expireMessages/{seconds}", s.topic(d, s.expireMessages))
	m.HandleFunc("POST "+topic+"/all_subscription/expireMessages/{seconds}", s.topic(d, s.expireAllSubscriptions))
	m.HandleFunc("GET "+sub+"/position/{n}", s.single(d, s.peekMessage))
}

// eachPartition runs op on t, or on every partition of a partitioned t,
// stopping at the first error. A subscription missing from some partitions
// is fine as long as one has it.
func (s *Server) eachPartition(ctx context.Context, t naming.Topic, op func(naming.Topic) error) error {
	topics, err := s.partitions(ctx, t)
	if err != nil {
		return err
	}
	var missing error
	found := false
	for _, p := range topics {
		switch err := op(p); {
		case err == nil:
			found = true
		case errors.Is(err, broker.ErrSubscriptionNotFound) && len(topics) > 1:
			missing = err
		default:
			return err
		}
	}
	if !found && missing != nil {
		return missing
	}
	return nil
}

// subscriptionOp runs op on the path's subscription, over the partitions
// of a partitioned topic, and answers 204.
func (s *Server) subscriptionOp(w http.ResponseWriter, r *http.Request, t naming.Topic, op func(b Broker, p naming.Topic, sub string) error) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	sub := r.PathValue("sub")
	if err := s.eachPartition(r.Context(), t, func(p naming.Topic) error {
		if remote, err := s.forwardPartition(r, t, p); remote { // cluster_fanout.go
			return err
		}
		return op(b, p, sub)
	}); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// listSubscriptions lists the subscriptions of a topic (of all partitions
// of a partitioned topic).
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	var all []string
	err := s.eachPartition(r.Context(), t, func(p naming.Topic) error {
		subs, err := b.Subscriptions(r.Context(), p)
		all = append(all, subs...)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	slices.Sort(all)
	writeJSON(w, http.StatusOK, nonNil(slices.Compact(all)))
}

// latest is the message id a subscription created without a body starts at.
var latest = broker.MessageID{LedgerID: broker.LatestLedgerID, EntryID: math.MaxInt64, Partition: -1, BatchIndex: -1}

// createSubscription creates a durable subscription at the message id of the
// body (default: latest), on every partition of a partitioned topic.
func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	if _, ok := boolParam(w, r, "replicated"); !ok {
		return
	}
	var in messageIDInput
	present, ok := readBody(w, r, maxValueBytes, &in)
	if !ok {
		return
	}
	at := latest
	if present {
		id, err := in.id()
		if err != nil {
			s.fail(w, err)
			return
		}
		at = id
	}
	if err := s.checkNamespace(r.Context(), t); err != nil {
		s.fail(w, err)
		return
	}
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.CreateSubscription(r.Context(), p, sub, at)
	})
}

// deleteSubscription deletes a subscription; ?force=true closes its consumers first.
func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.DeleteSubscription(r.Context(), p, sub, force)
	})
}

// nonNegative reads a non-negative integer path segment, answering 400 otherwise.
func nonNegative(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	n, ok := intPathValue(w, r, name)
	if ok && n < 0 {
		writeError(w, http.StatusBadRequest, name+" must not be negative")
		return 0, false
	}
	return n, ok
}

func (s *Server) skipMessages(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	n, ok := nonNegative(w, r, "n")
	if !ok {
		return
	}
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.SkipMessages(r.Context(), p, sub, n)
	})
}

func (s *Server) clearBacklog(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.ClearBacklog(r.Context(), p, sub)
	})
}

// resetCursor moves a subscription to the message id of the body. On a
// partitioned topic the id must name the partition (partitionIndex).
func (s *Server) resetCursor(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	var in messageIDInput
	if !requireBody(w, r, maxValueBytes, &in, "a message id") {
		return
	}
	id, err := in.id()
	if err != nil {
		s.fail(w, err)
		return
	}
	n, err := s.meta.PartitionedTopic(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	if n > 0 {
		if id.Partition < 0 || id.Partition >= n {
			writeError(w, http.StatusMethodNotAllowed, "resetting the cursor of partitioned topic "+t.String()+
				" to a message id needs the partitionIndex of one of its partitions")
			return
		}
		t = t.Partition(id.Partition)
	}
	if remote, err := s.forwardPartition(r, t, t); remote { // the partition's owner (cluster_fanout.go)
		if err != nil {
			s.fail(w, err)
		} else {
			noContent(w)
		}
		return
	}
	b, ok := s.broker(w)
	if !ok {
		return
	}
	if err := b.ResetCursor(r.Context(), t, r.PathValue("sub"), id, in.IsExcluded); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// resetCursorToTime moves a subscription to the first message published at
// or after the path's timestamp (unix milliseconds).
func (s *Server) resetCursorToTime(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	ts, ok := intPathValue(w, r, "timestamp")
	if !ok {
		return
	}
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.ResetCursorToTime(r.Context(), p, sub, ts)
	})
}

// expireMessages acknowledges the messages published more than the path's
// number of seconds ago.
func (s *Server) expireMessages(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	secs, ok := expiry(w, r)
	if !ok {
		return
	}
	s.subscriptionOp(w, r, t, func(b Broker, p naming.Topic, sub string) error {
		return b.ExpireMessages(r.Context(), p, sub, secs)
	})
}

func expiry(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	n, ok := nonNegative(w, r, "seconds")
	if !ok {
		return 0, false
	}
	if n > math.MaxInt64/int64(time.Second) {
		writeError(w, http.StatusBadRequest, "seconds is too large")
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// expireAllSubscriptions expires messages on every subscription of the topic.
func (s *Server) expireAllSubscriptions(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	age, ok := expiry(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	err := s.eachPartition(ctx, t, func(p naming.Topic) error {
		if remote, err := s.forwardPartition(r, t, p); remote { // cluster_fanout.go
			return err
		}
		subs, err := b.Subscriptions(ctx, p)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if err := b.ExpireMessages(ctx, p, sub, age); err != nil && !errors.Is(err, broker.ErrSubscriptionNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// peekMessage returns the n-th (from 1) unacknowledged message of a
// subscription, as GET .../ledger/{l}/entry/{e} does.
func (s *Server) peekMessage(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	n, ok := intPathValue(w, r, "n")
	if !ok {
		return
	}
	m, err := b.PeekMessage(r.Context(), t, r.PathValue("sub"), max(n, 1))
	if err != nil {
		s.fail(w, err)
		return
	}
	s.writeMessage(w, m)
}
