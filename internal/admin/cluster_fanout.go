package admin

import (
	"bytes"
	"encoding/json"
	"errors"
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
	q := r.URL.Query()
	q.Del("perPartition")
	base, remote, err := s.partitionOwner(r, p, q)
	if !remote || err != nil {
		return remote, err
	}
	target := withQuery(base+"/admin/v2/"+p.Domain+"/"+p.Namespace.String()+"/"+url.PathEscape(p.Local)+"/"+op, q)
	status, body, err := callOwner(r, http.MethodGet, target, false, 64<<20)
	switch {
	case err != nil:
		return true, fmt.Errorf("ask the owner of %s: %w", p, err)
	case status == http.StatusNotFound:
		return true, errRemoteNotFound
	case status != http.StatusOK:
		return true, &statusError{status: status, reason: fmt.Sprintf("owner of %s answered %d: %s", p, status, strings.TrimSpace(string(body)))}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return true, fmt.Errorf("answer of the owner of %s: %w", p, err)
	}
	return true, nil
}

// forwardPartition replays r (an operation on topic t, a partitioned topic
// or one of its partitions) on partition p at p's owner when another broker serves p: the same method,
// path with p's name, query and body. remote is false when this broker
// serves p (or in standalone); err maps the owner's error answer (404 of a
// subscription to ErrSubscriptionNotFound, so that a subscription missing
// from some partitions is fine, as locally).
func (s *Server) forwardPartition(r *http.Request, t, p naming.Topic) (remote bool, err error) {
	q := r.URL.Query()
	base, remote, err := s.partitionOwner(r, p, q)
	if !remote || err != nil {
		return remote, err
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(seg) < 6 {
		return true, fmt.Errorf("forward %s to the owner of %s: unexpected path", r.URL.Path, p)
	}
	seg[5] = url.PathEscape(p.Local)
	status, msg, err := callOwner(r, r.Method, withQuery(base+"/"+strings.Join(seg, "/"), q), true, 64<<10)
	if status == 0 { // no answer; the owner's status counts even if its body was cut
		return true, fmt.Errorf("forward to the owner of %s: %w", p, err)
	}
	reason := fmt.Sprintf("owner of %s answered %d: %s", p, status, strings.TrimSpace(string(msg)))
	switch {
	case status/100 == 2:
		return true, nil
	case status == http.StatusNotFound && strings.Contains(strings.ToLower(string(msg)), "subscription"):
		return true, fmt.Errorf("%w: %s", broker.ErrSubscriptionNotFound, reason)
	}
	return true, &statusError{status: status, reason: reason}
}

// callPartitionOwner sends method <owner>/admin/v2/<domain>/<tenant>/<ns>/
// <partition>[/op] with r's query (and r's body again when body is set) when
// another broker serves partition p, and decodes a 2xx answer's JSON into v
// (unless v is nil). remote is false when this broker serves p (or in
// standalone). An owner's error answer is a *statusError with its status.
func (s *Server) callPartitionOwner(r *http.Request, p naming.Topic, method, op string, body bool, v any) (remote bool, err error) {
	q := r.URL.Query()
	q.Del("perPartition")
	base, remote, err := s.partitionOwner(r, p, q)
	if !remote || err != nil {
		return remote, err
	}
	target := base + "/admin/v2/" + p.Domain + "/" + p.Namespace.String() + "/" + url.PathEscape(p.Local)
	if op != "" {
		target += "/" + op
	}
	status, msg, err := callOwner(r, method, withQuery(target, q), body, 64<<20)
	switch {
	case status == 0:
		return true, fmt.Errorf("ask the owner of %s: %w", p, err)
	case status/100 != 2:
		return true, &statusError{status: status, reason: fmt.Sprintf("owner of %s answered %d: %s", p, status, strings.TrimSpace(string(msg)))}
	case err != nil:
		return true, fmt.Errorf("answer of the owner of %s: %w", p, err)
	case v != nil:
		if err := json.Unmarshal(msg, v); err != nil {
			return true, fmt.Errorf("answer of the owner of %s: %w", p, err)
		}
	}
	return true, nil
}

// remoteStatus reports whether err is an owner's answer with this status.
func remoteStatus(err error, status int) bool {
	var se *statusError
	return errors.As(err, &se) && se.status == status
}

// remotePartitionBusy reports whether partition p, served by another
// broker (remote), has producers or consumers connected, from its stats at
// the owner; a partition its owner does not know is not busy.
func (s *Server) remotePartitionBusy(r *http.Request, p naming.Topic) (remote, busy bool, err error) {
	var st struct {
		Publishers    []json.RawMessage `json:"publishers"`
		Subscriptions map[string]struct {
			Consumers []json.RawMessage `json:"consumers"`
		} `json:"subscriptions"`
	}
	remote, err = s.callPartitionOwner(r, p, http.MethodGet, "stats", false, &st)
	if !remote || remoteStatus(err, http.StatusNotFound) {
		return remote, false, nil
	}
	if err != nil {
		return true, false, err
	}
	busy = len(st.Publishers) > 0
	for _, sub := range st.Subscriptions {
		busy = busy || len(sub.Consumers) > 0
	}
	return true, busy, nil
}

// partitionOwner returns the admin URL of partition p's owner when another
// broker serves it (remote); q gets authoritative=true when the lookup just
// assigned p. remote is false when this broker serves p, or in standalone.
func (s *Server) partitionOwner(r *http.Request, p naming.Topic, q url.Values) (base string, remote bool, err error) {
	c := s.cfg.Cluster
	if c == nil || !p.IsPersistent() {
		return "", false, nil
	}
	self, owner, assign, err := c.TopicOwner(r.Context(), p.Namespace.String(), p.String(), false)
	if err != nil {
		return "", true, err
	}
	if self {
		return "", false, nil
	}
	if assign {
		q.Set("authoritative", "true")
	}
	return strings.TrimRight(owner.HTTP, "/"), true, nil
}

func withQuery(target string, q url.Values) string {
	if len(q) > 0 {
		return target + "?" + q.Encode()
	}
	return target
}

// callOwner sends method target with the caller's Authorization and
// Content-Type (and, with body, r's body again: keepBody), following up to
// 3 redirects by hand so that the credentials go along (the topic moved
// meanwhile); it returns the final answer's status and up to limit bytes
// of its body.
func callOwner(r *http.Request, method, target string, body bool, limit int64) (int, []byte, error) {
	for hop := 0; hop < 3; hop++ {
		var rd io.Reader
		if body && r.GetBody != nil {
			rc, err := r.GetBody()
			if err != nil {
				return 0, nil, err
			}
			rd = rc
		}
		req, err := http.NewRequestWithContext(r.Context(), method, target, rd)
		if err != nil {
			return 0, nil, err
		}
		for _, h := range []string{"Authorization", "Content-Type"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := fanoutClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		msg, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") != "" {
			target = resp.Header.Get("Location")
			continue
		}
		return resp.StatusCode, msg, err // a status with a body not read whole
	}
	return 0, nil, fmt.Errorf("too many redirects")
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

// forced is r with only force=true as its query: the call a namespace or
// tenant deletion makes on each topic's owner.
func forced(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = url.Values{"force": {"true"}}.Encode()
	return r2
}

// deleteAtOwner deletes topic t (a partition or a topic) for admin call r:
// at its owner when another broker serves it (with r's credentials and
// query; an owner that does not know it counts as deleted), else here.
func (s *Server) deleteAtOwner(r *http.Request, t naming.Topic, force bool) error {
	remote, err := s.callPartitionOwner(r, t, http.MethodDelete, "", false, nil)
	switch {
	case remote && err != nil && !remoteStatus(err, http.StatusNotFound):
		return err
	case remote:
		return nil
	}
	if err := s.cfg.Broker.DeleteTopic(r.Context(), t, force); err != nil && !errors.Is(err, broker.ErrTopicNotFound) {
		return err
	}
	return nil
}
