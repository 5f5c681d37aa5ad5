// Package admin serves the HTTP side of the broker: Pulsar's admin REST API
// v2 (/admin/v2/...), the HTTP lookup API, health checks and Prometheus
// metrics. It talks to metadata through meta and to topics through the
// broker's exported methods; it never touches storage directly.
//
// Paths, bodies, status codes and JSON shapes follow Pulsar's, as the
// official admin clients (pulsar-admin, Go's pulsaradmin) send and decode
// them. Every error is answered as {"reason": "..."}: 400 for a malformed
// body or parameter, 404 for something missing, 405 for an operation the
// topic does not support, 409 for a conflict, 412 for an invalid name or
// policy value. Files are split by resource: tenants.go, namespaces.go,
// policies.go, topics.go, topic_policies.go, stats.go, subscriptions.go,
// messages.go.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
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
	// Pprof serves Go's profiles under /debug/pprof/ (superusers only when
	// auth is on).
	Pprof bool
	// Access, when set, serves the access control plane's JSON mapping
	// under /access/v1/; it authenticates its callers itself.
	Access http.Handler
	// Ready reports whether the broker serves; health checks fail until it does.
	Ready func() bool
	// Health, when set, returns the reasons the broker serves in a degraded
	// way (ledger.HealthReporter); health checks then answer
	// "degraded: <problem>; <problem>" with status 200.
	Health func() []string
	// Broker acts on topics; endpoints that need it answer 503 while nil.
	Broker Broker
	// Auth authenticates and authorizes requests (authz.go); nil: off.
	Auth *auth.Service
	// RefusePlaintextCredentials answers 401 to a request that carries an
	// Authorization header over plain HTTP (authz.go).
	RefusePlaintextCredentials bool
	// BrokerURLTLS and WebURLTLS are the pulsar+ssl:// and https:// URLs
	// lookups answer when TLS is on.
	BrokerURLTLS string
	WebURLTLS    string
	// Listeners are the named advertised listeners (--advertised-listeners)
	// an HTTP lookup with listenerName answers from.
	Listeners map[string]broker.Listener
	// Schemas is the schema registry; nil: one over the admin's metadata.
	Schemas *schema.Registry
	// Functions serves /admin/v3/functions (functions.go); while nil those
	// endpoints answer 503 with FunctionsUnavailable as the reason.
	Functions            Functions
	FunctionsUnavailable string
	// Cluster answers cluster mode's endpoints and topic redirects (cluster.go); nil in standalone.
	Cluster Cluster
	// Connectors serves /admin/v3/sources and /admin/v3/sinks
	// (connectors.go); while nil they answer 503 with ConnectorsUnavailable.
	Connectors            Connectors
	ConnectorsUnavailable string
}

// Broker is what the admin API needs of the broker (*broker.Broker).
type Broker interface {
	UnloadTopic(fullName string) error
	NamespaceTopics(ctx context.Context, ns naming.Namespace, domains ...string) ([]string, error)
	TopicExists(ctx context.Context, name naming.Topic) (bool, error)
	CheckTopicQuota(ctx context.Context, name naming.Topic, partitions int) error
	CreateTopic(ctx context.Context, name naming.Topic) error
	DeleteTopic(ctx context.Context, name naming.Topic, force bool) error
	HasClients(name naming.Topic) bool
	TerminateTopic(ctx context.Context, name naming.Topic) (broker.MessageID, error)
	TopicStats(ctx context.Context, name naming.Topic) (broker.TopicStats, error)
	TopicInternalStats(ctx context.Context, name naming.Topic) (broker.InternalStats, error)
	LastMessageID(ctx context.Context, name naming.Topic) (broker.MessageID, error)
	MessageIDByTimestamp(ctx context.Context, name naming.Topic, ts int64) (broker.MessageID, error)
	ReadMessage(ctx context.Context, name naming.Topic, ledgerID, entryID int64) (broker.Message, error)
	Subscriptions(ctx context.Context, name naming.Topic) ([]string, error)
	CreateSubscription(ctx context.Context, name naming.Topic, sub string, at broker.MessageID) error
	DeleteSubscription(ctx context.Context, name naming.Topic, sub string, force bool) error
	SkipMessages(ctx context.Context, name naming.Topic, sub string, n int64) error
	ClearBacklog(ctx context.Context, name naming.Topic, sub string) error
	ExpireMessages(ctx context.Context, name naming.Topic, sub string, age time.Duration) error
	ResetCursor(ctx context.Context, name naming.Topic, sub string, at broker.MessageID, exclusive bool) error
	ResetCursorToTime(ctx context.Context, name naming.Topic, sub string, ts int64) error
	PeekMessage(ctx context.Context, name naming.Topic, sub string, n int64) (broker.Message, error)
	ApplyReplicatedSubscription(ctx context.Context, name naming.Topic, sub string, watermarks map[string][2]int64) (int64, error)
	// WithDefaults completes policies with the broker's defaults.
	WithDefaults(p meta.Policies) meta.Policies
}

// Body size limits: policies and tenant documents are small.
const (
	maxBodyBytes  = 1 << 20
	maxValueBytes = 64 << 10
)

// Server is the admin HTTP handler.
type Server struct {
	cfg     Config
	meta    *meta.Resources
	mux     *http.ServeMux
	schemas *schema.Registry
}

// New builds the handler.
func New(cfg Config, md *meta.Resources) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, meta: md, mux: http.NewServeMux(), schemas: cfg.Schemas}
	if s.schemas == nil {
		s.schemas = schema.NewRegistry(md, nil)
	}
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
	if s.cfg.Pprof {
		m.HandleFunc("GET /debug/pprof/", pprof.Index)
		m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if s.cfg.Access != nil {
		m.Handle("/access/v1/", s.cfg.Access)
	}
	s.brokerRoutes(m)
	s.tenantRoutes(m)
	s.namespaceRoutes(m)
	s.policyRoutes(m)
	s.schemaRoutes(m)
	s.compactionThresholdRoutes(m)
	s.offloadPolicyRoutes(m)
	s.offloadNamespacePolicyRoutes(m)
	s.functionRoutes(m)
	s.connectorRoutes(m)
	for _, d := range []string{naming.Persistent, naming.NonPersistent} {
		s.topicRoutes(m, d)
		s.compactionRoutes(m, d)
		s.offloadRoutes(m, d)
		s.statsRoutes(m, d)
		s.subscriptionRoutes(m, d)
		s.topicPolicyRoutes(m, d)
	}
}

// ServeHTTP implements http.Handler. Requests no route matches get Pulsar's
// error shape too, with the mux's status (404, or 405 for a known path).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if s.serveCluster(w, r) {
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status != http.StatusNotFound && rec.status != http.StatusMethodNotAllowed {
			s.mux.ServeHTTP(w, r) // a redirect to the clean path
			return
		}
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		reason := "no such endpoint: " + r.Method + " " + r.URL.Path
		if rec.status == http.StatusMethodNotAllowed {
			reason = "method " + r.Method + " is not allowed on " + r.URL.Path
		}
		writeError(w, rec.status, reason)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// statusRecorder captures the status the mux gives unmatched requests.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Ready != nil && !s.cfg.Ready() {
		writeError(w, http.StatusServiceUnavailable, "broker is not ready")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if s.cfg.Health != nil {
		if problems := s.cfg.Health(); len(problems) > 0 {
			w.Write([]byte("degraded: " + strings.Join(problems, "; ")))
			return
		}
	}
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

// noContent answers a successful update, as Pulsar does.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// metaError maps metadata errors to HTTP answers.
func (s *Server) metaError(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, meta.ErrNotFound):
		writeError(w, http.StatusNotFound, what+" does not exist")
	case errors.Is(err, meta.ErrExists):
		writeError(w, http.StatusConflict, what+" already exists")
	case errors.Is(err, naming.ErrInvalid):
		writeError(w, http.StatusPreconditionFailed, err.Error())
	default:
		s.internalError(w, err)
	}
}

// statusError is an error with the HTTP status to answer it with.
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string { return e.reason }

func errorf(status int, format string, args ...any) error {
	return &statusError{status: status, reason: fmt.Sprintf(format, args...)}
}

// fail answers an error: a statusError as it says, errors of broker
// operations and metadata by their kind, anything else with 500.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		writeError(w, se.status, se.reason)
	case errors.Is(err, broker.ErrTopicNotFound), errors.Is(err, broker.ErrSubscriptionNotFound),
		errors.Is(err, broker.ErrMessageNotFound), errors.Is(err, meta.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, broker.ErrTopicExists), errors.Is(err, broker.ErrSubscriptionExists), errors.Is(err, meta.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, broker.ErrTopicBusy), errors.Is(err, broker.ErrSubscriptionBusy), errors.Is(err, naming.ErrInvalid),
		errors.Is(err, broker.ErrTooManyTopics):
		writeError(w, http.StatusPreconditionFailed, err.Error())
	case errors.Is(err, broker.ErrNotAllowed):
		writeError(w, http.StatusMethodNotAllowed, err.Error())
	case errors.Is(err, broker.ErrOffloadNotConfigured):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.internalError(w, err)
	}
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.cfg.Logger.Error("admin request failed", "err", err)
	writeError(w, http.StatusInternalServerError, err.Error())
}

// broker returns the broker, answering 503 when there is none.
func (s *Server) broker(w http.ResponseWriter) (Broker, bool) {
	if s.cfg.Broker == nil {
		writeError(w, http.StatusServiceUnavailable, "broker is not running")
		return nil, false
	}
	return s.cfg.Broker, true
}

// readBody reads a request body of at most limit bytes and decodes it as
// JSON into v. It reports false after answering 400 (malformed) or 413 (too
// large); present is false when the body is empty.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any) (present, ok bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
		} else {
			writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		}
		return false, false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return false, true
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return true, false
	}
	return true, true
}

// requireBody is readBody for endpoints whose body is mandatory.
func requireBody(w http.ResponseWriter, r *http.Request, limit int64, v any, what string) bool {
	present, ok := readBody(w, r, limit, v)
	if ok && !present {
		writeError(w, http.StatusBadRequest, "request body must be "+what)
		return false
	}
	return ok
}

// boolParam reads an optional boolean query parameter, answering 400 when malformed.
func boolParam(w http.ResponseWriter, r *http.Request, name string) (value, ok bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "query parameter "+name+" must be true or false, not "+strconv.Quote(v))
		return false, false
	}
	return b, true
}

// intPathValue parses an integer path segment, answering 400 when malformed.
func intPathValue(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, name+" must be an integer, not "+strconv.Quote(v))
		return 0, false
	}
	return n, true
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
