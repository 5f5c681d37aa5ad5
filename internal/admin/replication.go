package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Replication clusters decide where a topic's messages are replicated
// (geo-replication): a namespace's replication_clusters, replaced for one
// topic by its topic-level replicationClusters. Every cluster named must be
// registered (412) and allowed by the tenant (403), as in Pulsar.

func (s *Server) replicationTopicRoutes(m *http.ServeMux, d string) {
	m.HandleFunc("POST /admin/v2/"+d+"/{tenant}/{ns}/{topic}/subscription/{sub}/"+geo.SubscriptionPath,
		s.topic(d, s.applyReplicatedSubscription))
	path := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}/replication"
	m.HandleFunc("GET "+path, s.topic(d, s.getTopicReplication))
	m.HandleFunc("POST "+path, s.topic(d, s.setTopicReplication))
	m.HandleFunc("PUT "+path, s.topic(d, s.setTopicReplication))
	m.HandleFunc("DELETE "+path, s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
			tp.ReplicationClusters = nil
			return nil
		})
	}))
}

// checkReplicationClusters checks a list of replication clusters against
// the registered clusters and the tenant's allowed clusters.
func (s *Server) checkReplicationClusters(ctx context.Context, tenant string, clusters []string) error {
	if len(clusters) == 0 {
		return errorf(http.StatusPreconditionFailed, "ClusterIds should not be null or empty")
	}
	known, err := s.meta.Clusters(ctx)
	if err != nil {
		return err
	}
	ti, err := s.meta.Tenant(ctx, tenant)
	if err != nil {
		return tenantError(err, tenant)
	}
	for _, c := range clusters {
		switch {
		case c == "global":
			return errorf(http.StatusPreconditionFailed, "Cannot specify global in the list of replication clusters")
		case strings.TrimSpace(c) == "" || !slices.Contains(known, c):
			return errorf(http.StatusPreconditionFailed, "cluster %s does not exist", c)
		case !slices.Contains(ti.AllowedClusters, c):
			return errorf(http.StatusForbidden, "Cluster %s is not in the list of allowed clusters list for tenant [%s]", c, tenant)
		}
	}
	return nil
}

// setReplication sets the clusters of a namespace.
func (s *Server) setReplication(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	var clusters []string
	if !requireBody(w, r, maxValueBytes, &clusters, "a list of clusters") {
		return
	}
	if err := s.checkReplicationClusters(r.Context(), ns.Tenant, clusters); err != nil {
		s.fail(w, err)
		return
	}
	clusters = uniq(clusters)
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		p.ReplicationClusters = clusters
		return nil
	})
}

// getTopicReplication answers the topic's own clusters (204 when not set),
// or with ?applied=true the clusters in force.
func (s *Server) getTopicReplication(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	v, ok := s.readTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, applied *meta.Policies) any {
		if applied != nil {
			return nonNil(applied.ReplicationClusters)
		}
		if len(tp.ReplicationClusters) == 0 {
			return nil
		}
		return tp.ReplicationClusters
	})
	if !ok {
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) setTopicReplication(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	var clusters []string
	if !requireBody(w, r, maxValueBytes, &clusters, "a list of clusters") {
		return
	}
	if err := s.checkReplicationClusters(r.Context(), t.Namespace.Tenant, clusters); err != nil {
		s.fail(w, err)
		return
	}
	clusters = uniq(clusters)
	s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
		tp.ReplicationClusters = clusters
		return nil
	})
}

// applyReplicatedSubscription takes another cluster's watermarks of a
// replicated subscription (geo.SubscriptionUpdate) and answers
// {"markDeleteEntryId": n}, the subscription's mark-delete entry after it.
// Sent by the replicators of the other clusters; it needs the consume
// permission on the topic.
func (s *Server) applyReplicatedSubscription(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	var u geo.SubscriptionUpdate
	if !requireBody(w, r, maxValueBytes, &u, `{"positions": {"<cluster>": "<ledgerId>:<entryId>"}}`) {
		return
	}
	marks := make(map[string][2]int64, len(u.Positions))
	for c, v := range u.Positions {
		l, e, err := geo.ParseSourcePosition(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		marks[c] = [2]int64{l, e}
	}
	md, err := b.ApplyReplicatedSubscription(r.Context(), t, r.PathValue("sub"), marks)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"markDeleteEntryId": md})
}
