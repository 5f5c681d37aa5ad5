package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Every request but health and metrics is authenticated, then authorized by
// its path before it reaches a handler, so a new endpoint cannot forget the
// check: what a path needs is decided here, in one place, and anything not
// recognised needs a superuser. The rules follow Pulsar's: superusers do
// everything; a tenant's admins manage its namespaces, policies, topics and
// subscriptions and functions (as do roles with the functions grant on the
// namespace); other roles may read a topic's metadata and stats with a
// produce or consume grant, and act on subscriptions with a consume grant.

// need is what a request requires of the caller's role.
type need int

const (
	needNothing need = iota
	needAuthenticated
	needSuperuser
	needTenantAdmin
	needListTopics // tenant admin, or a produce/consume grant on the namespace
	needLookup     // tenant admin, or produce or consume on the topic
	needConsume    // tenant admin, or consume on the topic (and subscription)
	needFunctions  // tenant admin, or the functions grant on the namespace
)

// requirement is the outcome of classifying a request.
type requirement struct {
	need   need
	tenant string
	ns     naming.Namespace
	topic  naming.Topic
	sub    string
}

// openPaths are served without authentication: probes and scrapers.
var openPaths = map[string]bool{"/healthz": true, "/metrics": true, "/admin/v2/brokers/health": true}

// classify decides what a request needs from its method and path.
func classify(method, path string) requirement {
	if openPaths[strings.TrimSuffix(path, "/")] {
		return requirement{need: needNothing}
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) >= 2 && seg[0] == "access" && seg[1] == "v1" {
		// The access control plane's JSON mapping authenticates and
		// authorizes its callers itself (some calls carry identity proofs).
		return requirement{need: needNothing}
	}
	if len(seg) >= 6 && seg[0] == "lookup" && seg[1] == "v2" && seg[2] == "topic" {
		return topicRequirement(needLookup, seg[3], seg[4:])
	}
	if len(seg) >= 5 && seg[0] == "admin" && (seg[1] == "v3" || seg[1] == "v2") && seg[2] == "functions" {
		return namespaceRequirement(needFunctions, seg[3:])
	}
	if len(seg) >= 3 && seg[0] == "admin" && (seg[1] == "v3" || seg[1] == "v2") && (seg[2] == "sources" || seg[2] == "sinks") {
		// Connectors are managed as functions are (Pulsar IO runs them in
		// the functions worker): tenant admins or the functions grant.
		if len(seg) == 4 && seg[3] == "builtin"+seg[2] {
			return requirement{need: needAuthenticated}
		}
		if len(seg) >= 5 {
			return namespaceRequirement(needFunctions, seg[3:])
		}
	}
	if len(seg) < 3 || seg[0] != "admin" || seg[1] != "v2" {
		return requirement{need: needSuperuser}
	}
	read := method == http.MethodGet || method == http.MethodHead
	rest := seg[3:]
	switch seg[2] {
	case "clusters":
		if read {
			return requirement{need: needAuthenticated}
		}
	case "tenants":
		if len(rest) == 1 && read {
			return requirement{need: needTenantAdmin, tenant: rest[0]}
		}
	case "namespaces":
		switch {
		case len(rest) == 1 && read:
			return requirement{need: needTenantAdmin, tenant: rest[0]}
		case len(rest) == 3 && rest[2] == "topics" && read:
			return namespaceRequirement(needListTopics, rest)
		case len(rest) >= 2:
			return namespaceRequirement(needTenantAdmin, rest)
		}
	case naming.Persistent, naming.NonPersistent:
		switch {
		case len(rest) == 2 && read, len(rest) == 3 && rest[2] == "partitioned" && read:
			return namespaceRequirement(needListTopics, rest)
		case len(rest) >= 3:
			return topicRequirement(topicNeed(method, rest[3:]), seg[2], rest)
		}
	case "schemas":
		if len(rest) >= 3 && read {
			// Consumers with an http:// service URL read schemas to decode.
			return topicRequirement(needLookup, naming.Persistent, rest)
		}
		if len(rest) >= 2 {
			return requirement{need: needTenantAdmin, tenant: rest[0]}
		}
	}
	return requirement{need: needSuperuser}
}

// topicNeed decides what an operation on a topic needs; op is the path
// after the topic name.
func topicNeed(method string, op []string) need {
	read := method == http.MethodGet || method == http.MethodHead
	if len(op) == 0 {
		if read {
			return needLookup
		}
		return needTenantAdmin
	}
	switch op[0] {
	case "stats", "partitioned-stats", "internalStats", "partitioned-internalStats", "partitions":
		if read {
			return needLookup
		}
	case "subscription", "subscriptions", "all_subscription", "lastMessageId", "messageid", "ledger":
		// Subscriptions and reading messages are consumer operations;
		// creating and deleting a subscription too, as in Pulsar.
		return needConsume
	}
	return needTenantAdmin
}

func namespaceRequirement(n need, rest []string) requirement {
	ns := naming.Namespace{Tenant: rest[0], Name: rest[1]}
	if ns.Validate() != nil {
		// Let a tenant admin reach the handler, which explains the bad name.
		return requirement{need: needTenantAdmin, tenant: rest[0]}
	}
	return requirement{need: n, tenant: rest[0], ns: ns}
}

func topicRequirement(n need, domain string, rest []string) requirement {
	t, err := naming.ParseTopic(domain + "://" + rest[0] + "/" + rest[1] + "/" + rest[2])
	if err != nil {
		return requirement{need: needTenantAdmin, tenant: rest[0]}
	}
	r := requirement{need: n, tenant: t.Namespace.Tenant, ns: t.Namespace, topic: t}
	if len(rest) >= 5 && rest[3] == "subscription" {
		r.sub = rest[4]
	}
	return r
}

// errPlaintextCredentials is the refusal of a credential sent over plain HTTP
// while the server refuses them there.
const errPlaintextCredentials = "credentials are refused over plain HTTP on this server (--refuse-plaintext-credentials): use HTTPS (--https-addr)"

// authorize authenticates r and checks it against what its path needs. It
// answers 401 or 403 and returns false when the request may not proceed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	a := s.cfg.Auth
	if s.cfg.RefusePlaintextCredentials && r.TLS == nil && r.Header.Get("Authorization") != "" {
		// Refused before anything is read, so the credential's value is
		// never acted on, whatever the path needs.
		writeError(w, http.StatusUnauthorized, errPlaintextCredentials)
		return r, false
	}
	req := classify(r.Method, r.URL.Path)
	if !a.Enabled() || req.need == needNothing {
		return r, true
	}
	p, err := a.AuthenticateHTTP(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="messagebus"`)
		writeError(w, http.StatusUnauthorized, err.Error())
		return r, false
	}
	ok, err := s.allowed(r.Context(), a, p.Role, req)
	if err != nil {
		s.internalError(w, err)
		return r, false
	}
	if !ok {
		if s.missingTenant(r.Context(), req) {
			// As Pulsar's tenant-admin check: a tenant that does not exist
			// is reported as such, before any permission is weighed.
			writeError(w, http.StatusNotFound, "Tenant does not exist")
			return r, false
		}
		writeError(w, http.StatusForbidden, "role "+strconv.Quote(p.Role)+" is not authorized to "+r.Method+" "+r.URL.Path)
		return r, false
	}
	return r.WithContext(auth.WithPrincipal(r.Context(), p)), true
}

func (s *Server) allowed(ctx context.Context, a *auth.Service, role string, req requirement) (bool, error) {
	switch req.need {
	case needAuthenticated:
		return true, nil
	case needTenantAdmin:
		return a.IsTenantAdmin(ctx, role, req.tenant)
	case needListTopics:
		return a.CanListTopics(ctx, role, req.ns)
	case needLookup:
		return a.CanLookup(ctx, role, req.topic)
	case needConsume:
		return a.CanConsume(ctx, role, req.topic, req.sub)
	case needFunctions:
		return a.CanManageFunctions(ctx, role, req.ns)
	case needSuperuser:
		return a.IsSuperuser(role), nil
	}
	return false, errors.New("unknown authorization requirement")
}

// missingTenant reports whether a request refused on a tenant-admin kind of
// need names a tenant that does not exist.
func (s *Server) missingTenant(ctx context.Context, req requirement) bool {
	switch req.need {
	case needTenantAdmin, needListTopics, needFunctions:
	default:
		return false
	}
	if req.tenant == "" {
		return false
	}
	_, err := s.meta.Tenant(ctx, req.tenant)
	return errors.Is(err, meta.ErrNotFound)
}
