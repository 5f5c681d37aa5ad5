package admin

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
)

func (s *Server) namespaceRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}", s.listNamespaces)
	m.HandleFunc("PUT /admin/v2/namespaces/{tenant}/{ns}", s.createNamespace)
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}", s.getPolicies)
	m.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}", s.deleteNamespace)
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/topics", s.namespaceTopics)
}

func isNotFound(err error) bool { return errors.Is(err, meta.ErrNotFound) }

func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantFromPath(w, r)
	if !ok {
		return
	}
	if _, err := s.meta.Tenant(r.Context(), tenant); err != nil {
		s.metaError(w, err, "tenant "+tenant)
		return
	}
	ns, err := s.meta.Namespaces(r.Context(), tenant)
	if err != nil {
		s.metaError(w, err, "namespaces")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ns))
}

// namespaceFromPath returns the validated namespace, answering 412 when invalid.
func namespaceFromPath(w http.ResponseWriter, r *http.Request) (naming.Namespace, bool) {
	ns := naming.Namespace{Tenant: r.PathValue("tenant"), Name: r.PathValue("ns")}
	if err := ns.Validate(); err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return ns, false
	}
	return ns, true
}

// createNamespace creates a namespace with the policies of the optional body.
func (s *Server) createNamespace(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	var p meta.Policies
	if _, ok := readBody(w, r, maxBodyBytes, &p); !ok {
		return
	}
	if string(p.BundlesData) == "null" {
		p.BundlesData = nil
	}
	if err := validatePolicies(&p); err != nil {
		s.fail(w, err)
		return
	}
	if len(p.ReplicationClusters) == 0 && s.cfg.ClusterName != "" {
		p.ReplicationClusters = []string{s.cfg.ClusterName}
	}
	if err := s.meta.CreateNamespace(r.Context(), ns, p); err != nil {
		what := "namespace " + ns.String()
		if isNotFound(err) {
			what = "tenant " + ns.Tenant
		}
		s.metaError(w, err, what)
		return
	}
	noContent(w)
}

// policiesJSON is a namespace's policies as Pulsar shows them: the maps and
// lists it always has are present even when empty.
type policiesJSON struct {
	meta.Policies
	AuthPolicies        meta.AuthPolicies            `json:"auth_policies"`
	BacklogQuotaMap     map[string]meta.BacklogQuota `json:"backlog_quota_map"`
	ReplicationClusters []string                     `json:"replication_clusters"`
	Bundles             json.RawMessage              `json:"bundles"`
	// Schema policies always show, with their defaults when unset.
	SchemaCompatibilityStrategy string `json:"schema_compatibility_strategy"`
	IsAllowAutoUpdateSchema     bool   `json:"is_allow_auto_update_schema"`
	SchemaValidationEnforced    bool   `json:"schema_validation_enforced"`
}

var defaultBundles = json.RawMessage(`{"boundaries":["0x00000000","0xffffffff"],"numBundles":1}`)

func policiesView(p meta.Policies) policiesJSON {
	v := policiesJSON{Policies: p, BacklogQuotaMap: p.BacklogQuotaMap, ReplicationClusters: nonNil(p.ReplicationClusters), Bundles: p.BundlesData}
	v.SchemaCompatibilityStrategy = string(schema.NamespaceStrategy(p))
	v.IsAllowAutoUpdateSchema = schema.AutoUpdateAllowed(p)
	v.SchemaValidationEnforced = p.SchemaValidationEnforced
	if p.AuthPolicies != nil {
		v.AuthPolicies = *p.AuthPolicies
	}
	if v.AuthPolicies.NamespaceAuth == nil {
		v.AuthPolicies.NamespaceAuth = map[string][]string{}
	}
	if v.AuthPolicies.DestinationAuth == nil {
		v.AuthPolicies.DestinationAuth = map[string]map[string][]string{}
	}
	if v.AuthPolicies.SubscriptionAuthRoles == nil {
		v.AuthPolicies.SubscriptionAuthRoles = map[string][]string{}
	}
	if v.BacklogQuotaMap == nil {
		v.BacklogQuotaMap = map[string]meta.BacklogQuota{}
	}
	if len(v.Bundles) == 0 {
		v.Bundles = defaultBundles
	}
	return v
}

// namespacePolicies reads the namespace named by the path and its policies,
// answering the request itself (412 bad name, 404 missing) when it cannot.
func (s *Server) namespacePolicies(w http.ResponseWriter, r *http.Request) (meta.Policies, bool) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return meta.Policies{}, false
	}
	p, err := s.meta.Namespace(r.Context(), ns)
	if err != nil {
		s.metaError(w, err, "namespace "+ns.String())
		return meta.Policies{}, false
	}
	return p, true
}

func (s *Server) getPolicies(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, policiesView(p))
}

// deleteNamespace refuses (409) while the namespace has topics; with
// ?force=true it deletes them first.
func (s *Server) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	if err := s.removeNamespace(r, ns, force); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// removeNamespace deletes namespace ns; r is the admin call: in cluster
// mode each topic another broker serves is deleted at its owner
// (cluster_fanout.go), with force.
func (s *Server) removeNamespace(r *http.Request, ns naming.Namespace, force bool) error {
	ctx := r.Context()
	if ok, err := s.meta.NamespaceExists(ctx, ns); err != nil {
		return err
	} else if !ok {
		return errorf(http.StatusNotFound, "namespace %s does not exist", ns)
	}
	var partitioned, topics []string
	for _, d := range []string{naming.Persistent, naming.NonPersistent} {
		ps, err := s.meta.PartitionedTopics(ctx, ns, d)
		if err != nil {
			return err
		}
		partitioned = append(partitioned, ps...)
	}
	if s.cfg.Broker != nil {
		var err error
		if topics, err = s.cfg.Broker.NamespaceTopics(ctx, ns, naming.Persistent, naming.NonPersistent); err != nil {
			return err
		}
	}
	if len(topics)+len(partitioned) > 0 && !force {
		return errorf(http.StatusConflict, "cannot delete non empty namespace %s: it has topics %v", ns, append(partitioned, topics...))
	}
	fr := forced(r)
	for _, p := range partitioned {
		t, err := naming.ParseTopic(p)
		if err != nil {
			return err
		}
		if err := s.removePartitionedAt(fr, t, true); err != nil {
			return err
		}
	}
	for _, name := range topics {
		t, err := naming.ParseTopic(name)
		if err != nil {
			return err
		}
		if err := s.deleteAtOwner(fr, t, true); err != nil {
			return err
		}
	}
	if err := s.meta.DeleteNamespace(ctx, ns); err != nil {
		if isNotFound(err) {
			return errorf(http.StatusNotFound, "namespace %s does not exist", ns)
		}
		return err
	}
	return nil
}

// namespaceTopics lists the topics of a namespace (?mode=PERSISTENT, the
// default, NON_PERSISTENT or ALL), partitions included.
func (s *Server) namespaceTopics(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	var domains []string
	switch mode := r.URL.Query().Get("mode"); mode {
	case "", "PERSISTENT":
		domains = []string{naming.Persistent}
	case "NON_PERSISTENT":
		domains = []string{naming.NonPersistent}
	case "ALL":
		domains = []string{naming.Persistent, naming.NonPersistent}
	default:
		writeError(w, http.StatusBadRequest, "mode must be PERSISTENT, NON_PERSISTENT or ALL, not "+mode)
		return
	}
	s.listTopics(w, r, ns, domains...)
}

func (s *Server) listTopics(w http.ResponseWriter, r *http.Request, ns naming.Namespace, domains ...string) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	if exists, err := s.meta.NamespaceExists(r.Context(), ns); err != nil {
		s.fail(w, err)
		return
	} else if !exists {
		writeError(w, http.StatusNotFound, "namespace "+ns.String()+" does not exist")
		return
	}
	topics, err := b.NamespaceTopics(r.Context(), ns, domains...)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(topics))
}
