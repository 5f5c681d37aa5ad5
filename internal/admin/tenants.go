package admin

import (
	"net/http"
	"slices"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

func (s *Server) tenantRoutes(m *http.ServeMux) {
	s.clusterRoutes(m)
	m.HandleFunc("GET /admin/v2/tenants", s.listTenants)
	m.HandleFunc("GET /admin/v2/tenants/{tenant}", s.getTenant)
	m.HandleFunc("PUT /admin/v2/tenants/{tenant}", s.createTenant)
	m.HandleFunc("POST /admin/v2/tenants/{tenant}", s.updateTenant)
	m.HandleFunc("DELETE /admin/v2/tenants/{tenant}", s.deleteTenant)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.meta.Tenants(r.Context())
	if err != nil {
		s.metaError(w, err, "tenants")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ts))
}

// tenantFromPath returns the validated tenant name, answering 412 when invalid.
func tenantFromPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.PathValue("tenant")
	if err := naming.ValidateEntity("tenant", t); err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return "", false
	}
	return t, true
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	name, ok := tenantFromPath(w, r)
	if !ok {
		return
	}
	t, err := s.meta.Tenant(r.Context(), name)
	if err != nil {
		s.metaError(w, err, "tenant "+name)
		return
	}
	writeJSON(w, http.StatusOK, normalizeTenant(t))
}

func normalizeTenant(t meta.TenantInfo) meta.TenantInfo {
	t.AdminRoles = nonNil(t.AdminRoles)
	t.AllowedClusters = nonNil(t.AllowedClusters)
	return t
}

// Reasons of refused tenant bodies, Pulsar's own words (TenantsBase).
const (
	reasonClustersEmpty   = "Clusters can not be empty"
	reasonClustersMissing = "Clusters do not exist"
	reasonRoleWhitespace  = "AdminRoles contains whitespace in the beginning or end."
)

// readTenant decodes and checks a TenantInfo body in Pulsar's order, each
// failure a 412: allowedClusters must name at least one cluster and no blank
// one (so an empty or missing body, or {}, never replaces a tenant's info),
// every cluster must exist, and no admin role may start or end with
// whitespace. Both lists are sets, as in Pulsar: duplicates are dropped.
func (s *Server) readTenant(w http.ResponseWriter, r *http.Request) (meta.TenantInfo, bool) {
	var t meta.TenantInfo
	if _, ok := readBody(w, r, maxBodyBytes, &t); !ok {
		return t, false
	}
	if len(t.AllowedClusters) == 0 || slices.ContainsFunc(t.AllowedClusters, func(c string) bool { return strings.TrimSpace(c) == "" }) {
		writeError(w, http.StatusPreconditionFailed, reasonClustersEmpty)
		return t, false
	}
	known, err := s.meta.Clusters(r.Context())
	if err != nil {
		s.metaError(w, err, "clusters")
		return t, false
	}
	for _, c := range t.AllowedClusters {
		if !slices.Contains(known, c) {
			writeError(w, http.StatusPreconditionFailed, reasonClustersMissing)
			return t, false
		}
	}
	for _, role := range t.AdminRoles {
		if strings.TrimSpace(role) != role {
			writeError(w, http.StatusPreconditionFailed, reasonRoleWhitespace)
			return t, false
		}
	}
	t.AllowedClusters = uniq(t.AllowedClusters)
	t.AdminRoles = uniq(t.AdminRoles)
	return normalizeTenant(t), true
}

// uniq drops repeated strings, keeping the first of each.
func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	name, ok := tenantFromPath(w, r)
	if !ok {
		return
	}
	t, ok := s.readTenant(w, r)
	if !ok {
		return
	}
	if err := s.meta.CreateTenant(r.Context(), name, t); err != nil {
		s.metaError(w, err, "tenant "+name)
		return
	}
	noContent(w)
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request) {
	name, ok := tenantFromPath(w, r)
	if !ok {
		return
	}
	t, ok := s.readTenant(w, r)
	if !ok {
		return
	}
	if err := s.meta.UpdateTenant(r.Context(), name, t); err != nil {
		s.metaError(w, err, "tenant "+name)
		return
	}
	noContent(w)
}

// deleteTenant refuses (409) while the tenant has namespaces; with
// ?force=true it deletes them first, with their topics.
func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request) {
	name, ok := tenantFromPath(w, r)
	if !ok {
		return
	}
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	if err := s.removeTenant(r, name, force); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// removeTenant deletes tenant name; r is the admin call (its credentials go
// along to the owners of topics another broker serves, in cluster mode).
func (s *Server) removeTenant(r *http.Request, name string, force bool) error {
	ctx := r.Context()
	if _, err := s.meta.Tenant(ctx, name); err != nil {
		return tenantError(err, name)
	}
	nss, err := s.meta.Namespaces(ctx, name)
	if err != nil {
		return err
	}
	if len(nss) > 0 && !force {
		return errorf(http.StatusConflict, "the tenant %s still has namespaces: %v", name, nss)
	}
	for _, n := range nss {
		ns, err := naming.ParseNamespace(n)
		if err != nil {
			return err
		}
		if err := s.removeNamespace(r, ns, true); err != nil {
			return err
		}
	}
	if err := s.meta.DeleteTenant(ctx, name); err != nil {
		return tenantError(err, name)
	}
	return nil
}

func tenantError(err error, name string) error {
	if isNotFound(err) {
		return errorf(http.StatusNotFound, "tenant %s does not exist", name)
	}
	return err
}
