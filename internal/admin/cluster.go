package admin

import (
	"context"
	"github.com/messagebus/messagebus/internal/broker"
	"net/http"
	"net/url"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
)

// Cluster is what the admin API needs of cluster mode (nil in standalone).
type Cluster interface {
	// Brokers lists the live brokers' HTTP host:port, as Pulsar's
	// GET /admin/v2/brokers/{cluster}.
	Brokers(ctx context.Context) ([]string, error)
	// Boundaries are a namespace's bundle boundaries (0x00000000 ... 0xffffffff).
	Boundaries() []string
	// TopicOwner returns where topic (full name) of ns is served: self, or
	// the owner's (or chosen broker's) URLs; assign is set when the
	// bundle is unowned and that broker was chosen to take it.
	TopicOwner(ctx context.Context, ns, topic string, authoritative bool) (self bool, owner OwnerURLs, assign bool, err error)
	// UnloadBundle gives up a bundle owned here; when another broker owns
	// it, it returns that broker's URLs instead (zero when done here).
	UnloadBundle(ctx context.Context, ns, bundle string) (owner OwnerURLs, err error)
}

// OwnerURLs are another broker's advertised URLs (the TLS ones empty when
// it has no TLS listener).
type OwnerURLs struct {
	HTTP, HTTPS, Pulsar, PulsarTLS string
	// Listeners are the owner's named advertised listeners.
	Listeners map[string]broker.Listener
}

// base is the URL a redirect of r goes to: the owner's https:// URL when r
// came over TLS and the owner has one.
func (o OwnerURLs) base(r *http.Request) string {
	if r.TLS != nil && o.HTTPS != "" {
		return o.HTTPS
	}
	return o.HTTP
}

// topicOps on a partitioned topic's metadata, answered by any broker.
var anyBrokerOps = map[string]bool{"partitions": true, "partitioned-stats": true, "partitioned-internalStats": true,
	"createMissedPartitions": true}

// serveCluster answers cluster-mode requests and redirects topic calls to
// the topic's owner; it reports whether it answered.
func (s *Server) serveCluster(w http.ResponseWriter, r *http.Request) bool {
	c := s.cfg.Cluster
	if c == nil {
		return false
	}
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(seg) == 7 && seg[0] == "lookup" && seg[1] == "v2" && seg[2] == "topic" && seg[3] == naming.Persistent {
		return s.lookupCluster(w, r, c, seg)
	}
	if len(seg) < 4 || seg[0] != "admin" || seg[1] != "v2" {
		return false
	}
	switch {
	case seg[2] == "brokers" && len(seg) == 4 && !brokersPaths[seg[3]] && r.Method == http.MethodGet:
		bs, err := c.Brokers(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return true
		}
		writeJSON(w, http.StatusOK, bs)
		return true
	case seg[2] == "namespaces" && len(seg) == 6 && seg[5] == "bundles" && r.Method == http.MethodGet:
		if !s.bundleNamespace(w, r, seg[3], seg[4]) {
			return true
		}
		b := c.Boundaries()
		writeJSON(w, http.StatusOK, map[string]any{"boundaries": b, "numBundles": len(b) - 1})
		return true
	case seg[2] == "namespaces" && len(seg) == 7 && seg[6] == "unload" && strings.HasPrefix(seg[5], "0x") && r.Method == http.MethodPut:
		if !s.bundleNamespace(w, r, seg[3], seg[4]) {
			return true
		}
		owner, err := c.UnloadBundle(r.Context(), seg[3]+"/"+seg[4], seg[5])
		switch {
		case err != nil && strings.Contains(err.Error(), "bundle"):
			writeError(w, http.StatusPreconditionFailed, err.Error())
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		case owner.HTTP != "":
			redirect(w, r, owner.base(r), false)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
		return true
	case seg[2] == "namespaces" && len(seg) == 6 && seg[5] == "unload" && r.Method == http.MethodPut:
		if !s.bundleNamespace(w, r, seg[3], seg[4]) {
			return true
		}
		s.unloadNamespace(w, r, c, seg[3]+"/"+seg[4]) // cluster_fanout.go
		return true
	case (seg[2] == naming.Persistent) && len(seg) >= 6:
		if len(seg) >= 7 && anyBrokerOps[seg[6]] {
			return false
		}
		t, err := naming.ParseTopic(seg[2] + "://" + seg[3] + "/" + seg[4] + "/" + unescape(seg[5]))
		if err != nil {
			return false // the route answers the bad name
		}
		self, owner, assign, err := c.TopicOwner(r.Context(), t.Namespace.String(), t.String(), r.URL.Query().Get("authoritative") == "true")
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return true
		}
		if self {
			keepBody(r) // a partitioned topic's call may be forwarded to its partitions' owners
			return false
		}
		redirect(w, r, owner.base(r), assign)
		return true
	}
	return false
}

// lookupCluster answers the HTTP lookup (GET /lookup/v2/topic/persistent/
// {tenant}/{ns}/{topic}) of a topic another broker owns with that broker's
// URLs, as Pulsar; an unowned bundle assigned to another broker is a 307
// there with authoritative=true. It reports whether it answered.
func (s *Server) lookupCluster(w http.ResponseWriter, r *http.Request, c Cluster, seg []string) bool {
	if r.Method != http.MethodGet {
		return false
	}
	t, err := naming.ParseTopic(seg[3] + "://" + seg[4] + "/" + seg[5] + "/" + unescape(seg[6]))
	if err != nil {
		return false // the route answers the bad name
	}
	self, owner, assign, err := c.TopicOwner(r.Context(), t.Namespace.String(), t.String(), r.URL.Query().Get("authoritative") == "true")
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case self:
		return false
	case assign:
		redirect(w, r, owner.base(r), true)
	default:
		lookupAnswer(w, r, owner.Pulsar, owner.PulsarTLS, owner.HTTP, owner.HTTPS, owner.Listeners)
	}
	return true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// bundleNamespace answers 404 unless the namespace of a bundles call exists.
func (s *Server) bundleNamespace(w http.ResponseWriter, r *http.Request, tenant, ns string) bool {
	n, err := naming.ParseNamespace(tenant + "/" + ns)
	if err == nil {
		_, err = s.meta.Namespace(r.Context(), n)
	}
	if err != nil {
		s.fail(w, err)
		return false
	}
	return true
}

// redirect answers 307 to the same path and query on base (the owner's
// HTTP URL); authoritative=true is added when that broker was chosen to
// take the bundle, as Pulsar does.
func redirect(w http.ResponseWriter, r *http.Request, base string, authoritative bool) {
	u := *r.URL
	q := u.Query()
	if authoritative {
		q.Set("authoritative", "true")
	}
	u.RawQuery = q.Encode()
	target := strings.TrimRight(base, "/") + u.RequestURI()
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
}
