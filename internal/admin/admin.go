// Package admin serves the HTTP side of the broker: Pulsar's admin REST API
// v2 (/admin/v2/...), the HTTP lookup API, health checks and Prometheus
// metrics. It talks to metadata through meta and to topics through the
// broker's exported methods; it never touches storage directly.
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the admin API.
type Config struct {
	ClusterName string
	// BrokerURL and WebURL are what lookups answer (pulsar:// and http://).
	BrokerURL string
	WebURL    string
	Logger    *slog.Logger
	Gatherer  prometheus.Gatherer
	// Ready reports whether the broker serves; health checks fail until it does.
	Ready func() bool
	// Broker acts on loaded topics.
	Broker Broker
}

// Broker is what the admin API needs of the broker.
type Broker interface {
	UnloadTopic(fullName string) error
}

// Server is the admin HTTP handler.
type Server struct {
	cfg  Config
	meta *meta.Resources
	mux  *http.ServeMux
}

// New builds the handler.
func New(cfg Config, md *meta.Resources) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, meta: md, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /admin/v2/brokers/health", s.health)
	m.HandleFunc("GET /healthz", s.health)
	if s.cfg.Gatherer != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
		m.Handle("GET /metrics/", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	m.HandleFunc("GET /admin/v2/clusters", s.listClusters)
	m.HandleFunc("GET /admin/v2/clusters/{cluster}", s.getCluster)
	m.HandleFunc("GET /admin/v2/tenants", s.listTenants)
	m.HandleFunc("GET /admin/v2/tenants/{tenant}", s.getTenant)
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}", s.listNamespaces)
	m.HandleFunc("PUT /admin/v2/namespaces/{tenant}/{ns}", s.createNamespace)
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}", s.getPolicies)
	m.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/deduplication", s.setDeduplication)
	m.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/deduplication", s.getDeduplication)
	for _, d := range []string{naming.Persistent, naming.NonPersistent} {
		d := d
		m.HandleFunc("PUT /admin/v2/"+d+"/{tenant}/{ns}/{topic}/partitions", func(w http.ResponseWriter, r *http.Request) { s.putPartitions(w, r, d, true) })
		m.HandleFunc("POST /admin/v2/"+d+"/{tenant}/{ns}/{topic}/partitions", func(w http.ResponseWriter, r *http.Request) { s.putPartitions(w, r, d, false) })
		m.HandleFunc("GET /admin/v2/"+d+"/{tenant}/{ns}/{topic}/partitions", func(w http.ResponseWriter, r *http.Request) { s.getPartitions(w, r, d) })
		m.HandleFunc("GET /lookup/v2/topic/"+d+"/{tenant}/{ns}/{topic}", s.lookup)
		m.HandleFunc("PUT /admin/v2/"+d+"/{tenant}/{ns}/{topic}/unload", func(w http.ResponseWriter, r *http.Request) { s.unload(w, r, d) })
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Ready != nil && !s.cfg.Ready() {
		writeError(w, http.StatusServiceUnavailable, "broker is not ready")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok"))
}

// writeError answers in Pulsar's error shape.
func writeError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]string{"reason": reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// metaError maps metadata errors to HTTP answers.
func metaError(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, meta.ErrNotFound):
		writeError(w, http.StatusNotFound, what+" does not exist")
	case errors.Is(err, meta.ErrExists):
		writeError(w, http.StatusConflict, what+" already exists")
	case errors.Is(err, naming.ErrInvalid):
		writeError(w, http.StatusPreconditionFailed, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request) {
	cs, err := s.meta.Clusters(r.Context())
	if err != nil {
		metaError(w, err, "clusters")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	c, err := s.meta.Cluster(r.Context(), r.PathValue("cluster"))
	if err != nil {
		metaError(w, err, "cluster "+r.PathValue("cluster"))
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.meta.Tenants(r.Context())
	if err != nil {
		metaError(w, err, "tenants")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ts))
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.meta.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		metaError(w, err, "tenant "+r.PathValue("tenant"))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if _, err := s.meta.Tenant(r.Context(), tenant); err != nil {
		metaError(w, err, "tenant "+tenant)
		return
	}
	ns, err := s.meta.Namespaces(r.Context(), tenant)
	if err != nil {
		metaError(w, err, "namespaces")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ns))
}

func (s *Server) createNamespace(w http.ResponseWriter, r *http.Request) {
	ns := naming.Namespace{Tenant: r.PathValue("tenant"), Name: r.PathValue("ns")}
	var p meta.Policies
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&p); err != nil && r.ContentLength > 0 {
			writeError(w, http.StatusBadRequest, "invalid policies: "+err.Error())
			return
		}
	}
	if err := s.meta.CreateNamespace(r.Context(), ns, p); err != nil {
		what := "namespace " + ns.String()
		if errors.Is(err, meta.ErrNotFound) {
			what = "tenant " + ns.Tenant
		}
		metaError(w, err, what)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func namespaceFromPath(r *http.Request) naming.Namespace {
	return naming.Namespace{Tenant: r.PathValue("tenant"), Name: r.PathValue("ns")}
}

func (s *Server) getPolicies(w http.ResponseWriter, r *http.Request) {
	ns := namespaceFromPath(r)
	p, err := s.meta.Namespace(r.Context(), ns)
	if err != nil {
		metaError(w, err, "namespace "+ns.String())
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// setDeduplication stores the namespace's deduplication policy (body: true
// or false). Topics pick it up when they are next loaded.
func (s *Server) setDeduplication(w http.ResponseWriter, r *http.Request) {
	ns := namespaceFromPath(r)
	var enabled bool
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64)).Decode(&enabled); err != nil {
		writeError(w, http.StatusBadRequest, "body must be true or false: "+err.Error())
		return
	}
	err := s.meta.UpdateNamespace(r.Context(), ns, func(p *meta.Policies) error {
		p.DeduplicationEnabled = &enabled
		return nil
	})
	if err != nil {
		metaError(w, err, "namespace "+ns.String())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getDeduplication(w http.ResponseWriter, r *http.Request) {
	ns := namespaceFromPath(r)
	p, err := s.meta.Namespace(r.Context(), ns)
	if err != nil {
		metaError(w, err, "namespace "+ns.String())
		return
	}
	writeJSON(w, http.StatusOK, p.DeduplicationEnabled != nil && *p.DeduplicationEnabled)
}

func topicFromPath(r *http.Request, domain string) (naming.Topic, error) {
	return naming.ParseTopic(domain + "://" + r.PathValue("tenant") + "/" + r.PathValue("ns") + "/" + r.PathValue("topic"))
}

// putPartitions creates (PUT) or grows (POST) a partitioned topic; the body is the partition count.
func (s *Server) putPartitions(w http.ResponseWriter, r *http.Request, domain string, create bool) {
	t, err := topicFromPath(r, domain)
	if err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	}
	var n int
	body := http.MaxBytesReader(w, r.Body, 64)
	if err := json.NewDecoder(body).Decode(&n); err != nil {
		writeError(w, http.StatusBadRequest, "body must be the number of partitions: "+err.Error())
		return
	}
	if n <= 0 {
		writeError(w, http.StatusNotAcceptable, "number of partitions must be more than 0")
		return
	}
	if t.PartitionIndex() >= 0 {
		writeError(w, http.StatusPreconditionFailed, "a partition cannot itself be partitioned: "+t.String())
		return
	}
	ctx := r.Context()
	if ok, err := s.meta.NamespaceExists(ctx, t.Namespace); err != nil || !ok {
		writeError(w, http.StatusNotFound, "namespace "+t.Namespace.String()+" does not exist")
		return
	}
	cur, err := s.meta.PartitionedTopic(ctx, t)
	if err != nil {
		metaError(w, err, "topic")
		return
	}
	switch {
	case create && cur > 0:
		writeError(w, http.StatusConflict, "partitioned topic "+t.String()+" already exists")
		return
	case !create && cur == 0:
		writeError(w, http.StatusNotFound, "partitioned topic "+t.String()+" does not exist")
		return
	case !create && n <= cur:
		writeError(w, http.StatusUnprocessableEntity, "the number of partitions can only grow (now "+strconv.Itoa(cur)+")")
		return
	}
	if err := s.meta.PutPartitionedTopic(ctx, t, n, create); err != nil {
		metaError(w, err, "partitioned topic "+t.String())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getPartitions(w http.ResponseWriter, r *http.Request, domain string) {
	t, err := topicFromPath(r, domain)
	if err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	}
	n, err := s.meta.PartitionedTopic(r.Context(), t)
	if err != nil {
		metaError(w, err, "topic")
		return
	}
	writeJSON(w, http.StatusOK, meta.PartitionedTopicMetadata{Partitions: n})
}

// lookup answers the HTTP lookup clients use with an http:// service URL.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	domain := naming.Persistent
	if strings.HasPrefix(r.URL.Path, "/lookup/v2/topic/"+naming.NonPersistent+"/") {
		domain = naming.NonPersistent
	}
	if _, err := topicFromPath(r, domain); err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"brokerUrl": s.cfg.BrokerURL,
		"httpUrl":   s.cfg.WebURL,
	})
}

// unload closes a topic's producers and consumers (they reconnect) and reloads it on next use.
func (s *Server) unload(w http.ResponseWriter, r *http.Request, domain string) {
	t, err := topicFromPath(r, domain)
	if err != nil {
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	}
	if s.cfg.Broker == nil {
		writeError(w, http.StatusServiceUnavailable, "broker is not running")
		return
	}
	if err := s.cfg.Broker.UnloadTopic(t.String()); err != nil {
		writeError(w, http.StatusInternalServerError, "unload "+t.String()+": "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
