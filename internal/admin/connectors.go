package admin

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/naming"
)

// Connectors is what /admin/v3/sources and /admin/v3/sinks need of the
// connectors worker (*connectors.Manager).
type Connectors interface {
	Create(ctx context.Context, kind connectors.Kind, cfg connectors.Config) error
	Update(ctx context.Context, kind connectors.Kind, cfg connectors.Config) error
	Delete(ctx context.Context, kind connectors.Kind, fqn string) error
	Get(ctx context.Context, kind connectors.Kind, fqn string) (connectors.Config, error)
	List(ctx context.Context, kind connectors.Kind, ns naming.Namespace) ([]string, error)
	Status(ctx context.Context, kind connectors.Kind, fqn string, instance int) (connectors.Status, error)
	SetRunning(ctx context.Context, kind connectors.Kind, fqn string, instance int, run bool) error
	Restart(ctx context.Context, kind connectors.Kind, fqn string, instance int) error
	Builtins(kind connectors.Kind) []connectors.ConnectorDefinition
}

// Pulsar IO's API: create and update take multipart/form-data with a
// "sourceConfig" or "sinkConfig" part (JSON), as pulsar-admin and
// pulsaradmin send, or that JSON as an application/json body.
func (s *Server) connectorRoutes(m *http.ServeMux) {
	for _, v := range []string{"v2", "v3"} {
		for _, kind := range []connectors.Kind{connectors.KindSource, connectors.KindSink} {
			root := "/admin/" + v + "/" + kind.Plural()
			base := root + "/{tenant}/{namespace}"
			c := base + "/{name}"
			m.HandleFunc("GET "+root+"/builtin"+kind.Plural(), s.connectorBuiltins(kind))
			m.HandleFunc("GET "+base, s.listConnectors(kind))
			m.HandleFunc("POST "+c, s.createConnector(kind, false))
			m.HandleFunc("PUT "+c, s.createConnector(kind, true))
			m.HandleFunc("DELETE "+c, s.deleteConnector(kind))
			m.HandleFunc("GET "+c, s.getConnector(kind))
			m.HandleFunc("GET "+c+"/status", s.connectorStatus(kind, false))
			m.HandleFunc("GET "+c+"/{instance}/status", s.connectorStatus(kind, true))
			for _, op := range []string{"start", "stop", "restart"} {
				m.HandleFunc("POST "+c+"/"+op, s.connectorRun(kind, op, false))
				m.HandleFunc("POST "+c+"/{instance}/"+op, s.connectorRun(kind, op, true))
			}
		}
	}
}

func (s *Server) connectors(w http.ResponseWriter, r *http.Request) (Connectors, bool) {
	ok := workerAvailable(w, r, s.cfg.Connectors, s.cfg.ConnectorsUnavailable, "the connectors worker is not running on this node")
	return s.cfg.Connectors, ok
}

// connectorsFail maps the worker's errors for kind.
func (s *Server) connectorsFail(kind connectors.Kind) func(http.ResponseWriter, error) {
	return func(w http.ResponseWriter, err error) {
		s.workerFail(w, err, string(kind), connectors.ErrNotFound, connectors.ErrExists)
	}
}

func (s *Server) connectorBuiltins(kind connectors.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, nonNil(c.Builtins(kind)))
	}
}

func (s *Server) listConnectors(kind connectors.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		ns := naming.Namespace{Tenant: r.PathValue("tenant"), Name: r.PathValue("namespace")}
		if err := ns.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		names, err := c.List(r.Context(), kind, ns)
		reply(w, nonNil(names), err, s.connectorsFail(kind))
	}
}

// readConnectorConfig reads create's and update's body.
func readConnectorConfig(w http.ResponseWriter, r *http.Request, kind connectors.Kind) (cfg connectors.Config, ok bool) {
	part := string(kind) + "Config"
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var raw []byte
	var pkg string
	switch {
	case err == nil && mt == "multipart/form-data":
		mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxBodyBytes), params["boundary"])
		ok := eachPart(w, mr, func(p *multipart.Part) bool {
			switch p.FormName() {
			case part:
				if raw, err = io.ReadAll(io.LimitReader(p, maxBodyBytes)); err != nil {
					writeError(w, http.StatusBadRequest, "read "+part+": "+err.Error())
					return false
				}
			case "url":
				// pulsaradmin's Create...WithURL sends the type this way.
				b, _ := io.ReadAll(io.LimitReader(p, 4096))
				if pkg = strings.TrimSpace(string(b)); !strings.HasPrefix(pkg, "builtin://") {
					writeError(w, http.StatusBadRequest, "connector packages are not supported: only built-in connectors run here (builtin://<type>)")
					return false
				}
			case "data":
				writeError(w, http.StatusBadRequest, "connector packages are not supported: only built-in connectors run here (archive builtin://<type>)")
				return false
			}
			return true
		})
		if !ok {
			return cfg, false
		}
		if raw == nil {
			writeError(w, http.StatusBadRequest, "the multipart part "+part+" is missing")
			return cfg, false
		}
	case err == nil && mt == "application/json":
		if raw, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			return cfg, false
		}
	default:
		writeError(w, http.StatusBadRequest, "want a multipart/form-data body with the part "+part+" (JSON), or that JSON as application/json")
		return cfg, false
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		writeError(w, http.StatusBadRequest, part+": "+err.Error())
		return cfg, false
	}
	if cfg.Archive == "" {
		cfg.Archive = pkg
	}
	return cfg, bindPath(w, r, part, &cfg.Tenant, &cfg.Namespace, &cfg.Name)
}

func (s *Server) createConnector(kind connectors.Kind, update bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		cfg, ok := readConnectorConfig(w, r, kind)
		if !ok {
			return
		}
		var err error
		if update {
			err = c.Update(r.Context(), kind, cfg)
		} else {
			if !s.namespaceExists(w, r, naming.Namespace{Tenant: cfg.Tenant, Name: cfg.Namespace}) {
				return
			}
			err = c.Create(r.Context(), kind, cfg)
		}
		reply(w, nil, err, s.connectorsFail(kind))
	}
}

func (s *Server) deleteConnector(kind connectors.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		reply(w, nil, c.Delete(r.Context(), kind, fqfnOf(r)), s.connectorsFail(kind))
	}
}

func (s *Server) getConnector(kind connectors.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		cfg, err := c.Get(r.Context(), kind, fqfnOf(r))
		reply(w, cfg, err, s.connectorsFail(kind))
	}
}

func instanceOf(w http.ResponseWriter, r *http.Request, one bool) (int, bool) {
	if !one {
		return -1, true
	}
	id, err := strconv.Atoi(r.PathValue("instance"))
	if err != nil || id < 0 {
		writeError(w, http.StatusBadRequest, "instance id "+strconv.Quote(r.PathValue("instance"))+": want a number from 0")
		return 0, false
	}
	return id, true
}

func (s *Server) connectorStatus(kind connectors.Kind, one bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		id, ok := instanceOf(w, r, one)
		if !ok {
			return
		}
		st, err := c.Status(r.Context(), kind, fqfnOf(r), id)
		var v any = st
		if err == nil && one {
			v = st.Instances[0].Status // Pulsar answers the instance's data alone
		}
		reply(w, v, err, s.connectorsFail(kind))
	}
}

func (s *Server) connectorRun(kind connectors.Kind, op string, one bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.connectors(w, r)
		if !ok {
			return
		}
		id, ok := instanceOf(w, r, one)
		if !ok {
			return
		}
		fqn := fqfnOf(r)
		err := runOp(r.Context(), op,
			func(ctx context.Context, run bool) error { return c.SetRunning(ctx, kind, fqn, id, run) },
			func(ctx context.Context) error { return c.Restart(ctx, kind, fqn, id) })
		if redirectElsewhere(w, r, err) {
			return
		}
		reply(w, nil, err, s.connectorsFail(kind))
	}
}
