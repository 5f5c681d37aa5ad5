package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/supervise"
)

// What the v3 handlers of functions, sources and sinks share: the
// worker-missing answer, the error mapping, the multipart reading, the
// path-versus-body names check and the start/stop/restart calls.

// workerAvailable answers 503 with reason (or fallback) when the node
// has no such worker (worker is nil), or when the worker says that no node
// of the cluster runs its instances (Available, cluster mode).
func workerAvailable(w http.ResponseWriter, r *http.Request, worker any, reason, fallback string) bool {
	if worker != nil {
		a, ok := worker.(interface{ Available(context.Context) error })
		if !ok {
			return true
		}
		err := a.Available(r.Context())
		if err == nil {
			return true
		}
		var ue *supervise.UnavailableError
		if errors.As(err, &ue) {
			writeError(w, http.StatusServiceUnavailable, err.Error())
		} else {
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return false
	}
	if reason == "" {
		reason = fallback
	}
	writeError(w, http.StatusServiceUnavailable, reason)
	return false
}

// redirectElsewhere answers 307 to the same call at the broker that runs
// the instance, when err says it runs elsewhere (cluster mode).
func redirectElsewhere(w http.ResponseWriter, r *http.Request, err error) bool {
	var ew *supervise.ElsewhereError
	if !errors.As(err, &ew) || ew.URL == "" {
		return false
	}
	u := strings.TrimSuffix(ew.URL, "/") + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, u, http.StatusTemporaryRedirect)
	return true
}

// workerFail maps a worker's error: what names the thing in the messages
// of errNotFound and errExists.
func (s *Server) workerFail(w http.ResponseWriter, err error, what string, errNotFound, errExists error) {
	var bad *supervise.BadRequestError
	var nf *supervise.NotFoundError
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, what+" does not exist")
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errExists):
		writeError(w, http.StatusConflict, what+" already exists")
	case errors.Is(err, supervise.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.fail(w, err)
	}
}

// eachPart calls fn for every part of a multipart body; false from fn
// (which has answered) or a bad body ends it with false.
func eachPart(w http.ResponseWriter, mr *multipart.Reader, fn func(p *multipart.Part) bool) bool {
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "read multipart body: "+err.Error())
			return false
		}
		ok := fn(p)
		p.Close()
		if !ok {
			return false
		}
	}
}

// bindPath checks the body's tenant, namespace and name against the
// path's (part names the body in the message) and sets them from it.
func bindPath(w http.ResponseWriter, r *http.Request, part string, tenant, ns, name *string) bool {
	for _, f := range []struct {
		what string
		v    *string
	}{{"tenant", tenant}, {"namespace", ns}, {"name", name}} {
		if p := r.PathValue(f.what); *f.v != "" && *f.v != p {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %s %q differs from the path's %q", part, f.what, *f.v, p))
			return false
		}
	}
	*tenant, *ns, *name = r.PathValue("tenant"), r.PathValue("namespace"), r.PathValue("name")
	return true
}

// runOp does start, stop or restart.
func runOp(ctx context.Context, op string, setRunning func(context.Context, bool) error, restart func(context.Context) error) error {
	switch op {
	case "start":
		return setRunning(ctx, true)
	case "stop":
		return setRunning(ctx, false)
	default:
		return restart(ctx)
	}
}

// reply answers err through fail, else v as JSON (204 when v is nil).
func reply(w http.ResponseWriter, v any, err error, fail func(http.ResponseWriter, error)) {
	switch {
	case err != nil:
		fail(w, err)
	case v == nil:
		noContent(w)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}
