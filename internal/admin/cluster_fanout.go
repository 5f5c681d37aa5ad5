package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/naming"
)

// Fan-out in cluster mode: calls on a partitioned topic (partitioned-stats,
// partitioned-internalStats, subscription operations, unload) are answered
// by one broker, but each partition may be owned by another. As Pulsar's
// broker does with its own admin client, the partitions served elsewhere
// are asked of their owners' admin API (with the caller's credentials) and
// the answers merged here.

// fanoutClient asks other brokers; redirects are followed by hand so that
// the credentials go along.
var fanoutClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// errRemoteNotFound is a 404 from the partition's owner.
var errRemoteNotFound = fmt.Errorf("partition not found on its owner")

// remotePartition decodes into v the answer of GET <owner>/admin/v2/<domain>/
// <tenant>/<ns>/<partition>/<op> when another broker serves partition p;
// remote is false when this broker serves it (or in standalone): the caller
// answers from its own broker.
func (s *Server) remotePartition(r *http.Request, p naming.Topic, op string, v any) (remote bool, err error) {
	c := s.cfg.Cluster
	if c == nil || !p.IsPersistent() {
		return false, nil
	}
	self, owner, assign, err := c.TopicOwner(r.Context(), p.Namespace.String(), p.String(), false)
	if err != nil {
		return true, err
	}
	if self {
		return false, nil
	}
	q := r.URL.Query()
	q.Del("perPartition")
	if assign {
		q.Set("authoritative", "true")
	}
	target := strings.TrimRight(owner.HTTP, "/") + "/admin/v2/" + p.Domain + "/" + p.Namespace.String() + "/" +
		url.PathEscape(p.Local) + "/" + op
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	for hop := 0; hop < 3; hop++ {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
		if err != nil {
			return true, err
		}
		if a := r.Header.Get("Authorization"); a != "" {
			req.Header.Set("Authorization", a)
		}
		resp, err := fanoutClient.Do(req)
		if err != nil {
			return true, fmt.Errorf("ask the owner of %s: %w", p, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			return true, fmt.Errorf("ask the owner of %s: %w", p, err)
		case resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") != "":
			target = resp.Header.Get("Location") // it moved meanwhile
			continue
		case resp.StatusCode == http.StatusNotFound:
			return true, errRemoteNotFound
		case resp.StatusCode != http.StatusOK:
			return true, &statusError{status: resp.StatusCode, reason: fmt.Sprintf("owner of %s answered %d: %s", p, resp.StatusCode, strings.TrimSpace(string(body)))}
		}
		if err := json.Unmarshal(body, v); err != nil {
			return true, fmt.Errorf("answer of the owner of %s: %w", p, err)
		}
		return true, nil
	}
	return true, fmt.Errorf("ask the owner of %s: too many redirects", p)
}

// forwardPartition replays r (an operation on topic t, a partitioned topic
// or one of its partitions) on partition p at p's owner when another broker serves p: the same method,
// path with p's name, query and body. remote is false when this broker
// serves p (or in standalone); err maps the owner's error answer (404 of a
// subscription to ErrSubscriptionNotFound, so that a subscription missing
// from some partitions is fine, as locally).
func (s *Server) forwardPartition(r *http.Request, t, p naming.Topic) (remote bool, err error) {
	c := s.cfg.Cluster
	if c == nil || !p.IsPersistent() {
		return false, nil
	}
	self, owner, assign, err := c.TopicOwner(r.Context(), p.Namespace.String(), p.String(), false)
	if err != nil {
		return true, err
	}
	if self {
		return false, nil
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(seg) < 6 {
		return true, fmt.Errorf("forward %s to the owner of %s: unexpected path", r.URL.Path, p)
	}
	seg[5] = url.PathEscape(p.Local)
	q := r.URL.Query()
	if assign {
		q.Set("authoritative", "true")
	}
	target := strings.TrimRight(owner.HTTP, "/") + "/" + strings.Join(seg, "/")
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	for hop := 0; hop < 3; hop++ {
		var body io.Reader
		if r.GetBody != nil {
			rc, err := r.GetBody()
			if err != nil {
				return true, err
			}
			defer rc.Close()
			body = rc
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target, body)
		if err != nil {
			return true, err
		}
		for _, h := range []string{"Authorization", "Content-Type"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := fanoutClient.Do(req)
		if err != nil {
			return true, fmt.Errorf("forward to the owner of %s: %w", p, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		reason := fmt.Sprintf("owner of %s answered %d: %s", p, resp.StatusCode, strings.TrimSpace(string(msg)))
		switch {
		case resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") != "":
			target = resp.Header.Get("Location")
			continue
		case resp.StatusCode/100 == 2:
			return true, nil
		case resp.StatusCode == http.StatusNotFound && strings.Contains(strings.ToLower(string(msg)), "subscription"):
			return true, fmt.Errorf("%w: %s", broker.ErrSubscriptionNotFound, reason)
		}
		return true, &statusError{status: resp.StatusCode, reason: reason}
	}
	return true, fmt.Errorf("forward to the owner of %s: too many redirects", p)
}

// keepBody buffers a small request body so that forwardPartition can send
// it again (r.GetBody) after the local handler read it.
func keepBody(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body.Close()
	if err != nil {
		b = nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// unloadNamespace unloads every bundle of ns (PUT /admin/v2/namespaces/
// {tenant}/{ns}/unload): the bundles owned here at once, the others by a PUT
// of .../{bundle}/unload to their owners; unowned bundles have nothing to
// unload. 204 when all are done.
func (s *Server) unloadNamespace(w http.ResponseWriter, r *http.Request, c Cluster, ns string) {
	bs := c.Boundaries()
	for i := 0; i+1 < len(bs); i++ {
		name := bs[i] + "_" + bs[i+1]
		owner, err := c.UnloadBundle(r.Context(), ns, name)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if owner.HTTP == "" {
			continue
		}
		target := strings.TrimRight(owner.HTTP, "/") + "/admin/v2/namespaces/" + ns + "/" + name + "/unload"
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPut, target, nil)
		if err != nil {
			s.internalError(w, err)
			return
		}
		if a := r.Header.Get("Authorization"); a != "" {
			req.Header.Set("Authorization", a)
		}
		resp, err := fanoutClient.Do(req)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("unload bundle %s at its owner: %v", name, err))
			return
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		// 307: it moved meanwhile; its new owner just took it (nothing to unload).
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusTemporaryRedirect {
			writeError(w, resp.StatusCode, fmt.Sprintf("unload bundle %s: owner answered %d: %s", name, resp.StatusCode, strings.TrimSpace(string(msg))))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
