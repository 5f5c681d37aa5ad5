package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Clusters as Pulsar's /admin/v2/clusters: PUT registers a cluster (409
// when registered), POST replaces its data (404 when not), DELETE forgets
// it (412 while a tenant allows it or a namespace replicates to it; the
// local cluster cannot be deleted), GET reads. Writes need a superuser;
// reads any authenticated role, but authenticationParameters (the link's
// credentials) are shown to superusers only.

func (s *Server) clusterRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/v2/clusters", s.listClusters)
	m.HandleFunc("GET /admin/v2/clusters/{cluster}", s.getCluster)
	m.HandleFunc("PUT /admin/v2/clusters/{cluster}", s.createCluster)
	m.HandleFunc("POST /admin/v2/clusters/{cluster}", s.updateCluster)
	m.HandleFunc("DELETE /admin/v2/clusters/{cluster}", s.deleteCluster)
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request) {
	cs, err := s.meta.Clusters(r.Context())
	if err != nil {
		s.metaError(w, err, "clusters")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
}

// clusterFromPath returns the validated cluster name, answering 412 when invalid.
func clusterFromPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	c := r.PathValue("cluster")
	if err := naming.ValidateEntity("cluster", c); err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return "", false
	}
	return c, true
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	name, ok := clusterFromPath(w, r)
	if !ok {
		return
	}
	c, err := s.meta.Cluster(r.Context(), name)
	if err != nil {
		s.metaError(w, err, "Cluster "+name)
		return
	}
	if c.AuthenticationParameters != "" && !s.isSuperuserRequest(r) {
		c.AuthenticationParameters = "******"
	}
	writeJSON(w, http.StatusOK, c)
}

// isSuperuserRequest reports whether the request may see secrets: auth is
// off, or its role is a superuser.
func (s *Server) isSuperuserRequest(r *http.Request) bool {
	a := s.cfg.Auth
	if !a.Enabled() {
		return true
	}
	p, ok := auth.FromContext(r.Context())
	return ok && a.IsSuperuser(p.Role)
}

// readClusterData decodes and checks a ClusterData body: at least one URL,
// each of the scheme its field takes (412 otherwise).
func readClusterData(w http.ResponseWriter, r *http.Request) (meta.ClusterData, bool) {
	var c meta.ClusterData
	if !requireBody(w, r, maxBodyBytes, &c, "the cluster's data (ClusterData JSON)") {
		return c, false
	}
	if c.ServiceURL == "" && c.ServiceURLTls == "" && c.BrokerServiceURL == "" && c.BrokerServiceURLTls == "" {
		writeError(w, http.StatusPreconditionFailed, "the cluster's data needs at least one of serviceUrl, serviceUrlTls, brokerServiceUrl, brokerServiceUrlTls")
		return c, false
	}
	for _, f := range []struct{ field, value, scheme string }{
		{"serviceUrl", c.ServiceURL, "http"},
		{"serviceUrlTls", c.ServiceURLTls, "https"},
		{"brokerServiceUrl", c.BrokerServiceURL, "pulsar"},
		{"brokerServiceUrlTls", c.BrokerServiceURLTls, "pulsar+ssl"},
	} {
		if f.value == "" {
			continue
		}
		// Several hosts (http://h1:8080,h2:8080) name several brokers.
		scheme, _, err := geo.SplitServiceURL(f.value, map[string]string{f.scheme: "0", "https": "0"})
		if err != nil || (scheme != f.scheme && !(f.field == "serviceUrl" && scheme == "https")) {
			writeError(w, http.StatusPreconditionFailed, "invalid "+f.field+" "+f.value+": want "+f.scheme+"://host:port")
			return c, false
		}
	}
	return c, true
}

func (s *Server) createCluster(w http.ResponseWriter, r *http.Request) {
	s.writeCluster(w, r, s.meta.CreateCluster)
}

func (s *Server) updateCluster(w http.ResponseWriter, r *http.Request) {
	s.writeCluster(w, r, s.meta.UpdateCluster)
}

// writeCluster reads the path's cluster and the body's ClusterData and
// stores them with put (create or update).
func (s *Server) writeCluster(w http.ResponseWriter, r *http.Request, put func(context.Context, string, meta.ClusterData) error) {
	name, ok := clusterFromPath(w, r)
	if !ok {
		return
	}
	c, ok := readClusterData(w, r)
	if !ok {
		return
	}
	if err := put(r.Context(), name, c); err != nil {
		s.metaError(w, err, "Cluster "+name)
		return
	}
	noContent(w)
}

func (s *Server) deleteCluster(w http.ResponseWriter, r *http.Request) {
	name, ok := clusterFromPath(w, r)
	if !ok {
		return
	}
	if name == s.cfg.ClusterName {
		writeError(w, http.StatusPreconditionFailed, "Cluster "+name+" is this broker's own cluster and cannot be deleted")
		return
	}
	err := s.meta.DeleteCluster(r.Context(), name)
	if errors.Is(err, meta.ErrClusterInUse) {
		writeError(w, http.StatusPreconditionFailed, "Cluster not empty: "+err.Error())
		return
	}
	if err != nil {
		s.metaError(w, err, "Cluster "+name)
		return
	}
	noContent(w)
}
