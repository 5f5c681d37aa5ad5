package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/messagebus/messagebus/internal/functions"
	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/naming"
)

// Functions is what the /admin/v3/functions API needs of the function
// worker (*functions.Manager).
type Functions interface {
	Create(ctx context.Context, cfg functions.Config, code []byte) error
	Update(ctx context.Context, cfg functions.Config, code []byte) error
	Delete(ctx context.Context, fqfn string) error
	Get(ctx context.Context, fqfn string) (functions.Config, error)
	List(ctx context.Context, ns naming.Namespace) ([]string, error)
	Status(ctx context.Context, fqfn string, instance int) (functions.FunctionStatus, error)
	Stats(ctx context.Context, fqfn string, instance int) (functions.FunctionStats, error)
	SetRunning(ctx context.Context, fqfn string, instance int, run bool) error
	Restart(ctx context.Context, fqfn string, instance int) error
	Trigger(ctx context.Context, fqfn, topic string, value []byte) ([]byte, error)
	State(ctx context.Context, fqfn, key string) (functions.StateValue, error)
	PutState(ctx context.Context, fqfn string, v functions.StateValue) error
}

// Pulsar's functions API (v3), in the shapes pulsar-admin functions and
// pulsaradmin send: create and update are multipart/form-data with a
// "functionConfig" part (JSON) and a "data" part (the module); trigger is
// multipart with "data" (the value), "dataStream" (a file) and "topic".
//
// The same handlers answer under /admin/v2/functions, where pulsaradmin
// sends them unless configured for API version 3.
func (s *Server) functionRoutes(m *http.ServeMux) {
	for _, v := range []string{"v2", "v3"} {
		s.functionRoutesAt(m, "/admin/"+v+"/functions/{tenant}/{namespace}")
	}
}

func (s *Server) functionRoutesAt(m *http.ServeMux, base string) {
	fn := base + "/{name}"
	m.HandleFunc("GET "+base, s.listFunctions)
	m.HandleFunc("POST "+fn, s.createFunction)
	m.HandleFunc("PUT "+fn, s.updateFunction)
	m.HandleFunc("DELETE "+fn, s.deleteFunction)
	m.HandleFunc("GET "+fn, s.getFunction)
	m.HandleFunc("GET "+fn+"/status", s.functionStatus)
	m.HandleFunc("GET "+fn+"/stats", s.functionStats)
	for _, op := range []string{"start", "stop", "restart"} {
		m.HandleFunc("POST "+fn+"/"+op, s.functionRun(op))
	}
	m.HandleFunc("POST "+fn+"/trigger", s.triggerFunction)
	// .../{instanceId}/{op} and .../state/{key} share a shape: one handler
	// tells them apart.
	m.HandleFunc("GET "+fn+"/{a}/{b...}", s.functionSub)
	m.HandleFunc("POST "+fn+"/{a}/{b...}", s.functionSub)
}

// maxFunctionBody bounds a create or update upload: the module plus config.
const maxFunctionBody = functions.MaxModuleSize + 1<<20

func (s *Server) functions(w http.ResponseWriter, r *http.Request) (Functions, bool) {
	ok := workerAvailable(w, r, s.cfg.Functions, s.cfg.FunctionsUnavailable, "the functions worker is not running on this node")
	return s.cfg.Functions, ok
}

func fqfnOf(r *http.Request) string {
	return r.PathValue("tenant") + "/" + r.PathValue("namespace") + "/" + r.PathValue("name")
}

func (s *Server) functionsFail(w http.ResponseWriter, err error) {
	var ue *wasm.UserError
	switch {
	case errors.Is(err, wasm.ErrBadModule):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &ue), errors.Is(err, wasm.ErrTimeout), errors.Is(err, wasm.ErrCrashed):
		// The function itself failed the trigger: not the server's fault.
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.workerFail(w, err, "function", functions.ErrNotFound, functions.ErrExists)
	}
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	ns := naming.Namespace{Tenant: r.PathValue("tenant"), Name: r.PathValue("namespace")}
	if err := ns.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	names, err := f.List(r.Context(), ns)
	reply(w, nonNil(names), err, s.functionsFail)
}

// readFunctionUpload reads the multipart body of create and update.
func readFunctionUpload(w http.ResponseWriter, r *http.Request) (cfg functions.Config, code []byte, ok bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, http.StatusBadRequest, "want a multipart/form-data body with the parts functionConfig (JSON) and data (the WebAssembly module)")
		return cfg, nil, false
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxFunctionBody), params["boundary"])
	haveConfig := false
	ok = eachPart(w, mr, func(p *multipart.Part) bool {
		switch p.FormName() {
		case "functionConfig":
			b, err := io.ReadAll(io.LimitReader(p, maxBodyBytes))
			if err == nil {
				err = json.Unmarshal(b, &cfg)
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, "functionConfig: "+err.Error())
				return false
			}
			haveConfig = true
		case "data":
			if code, err = io.ReadAll(p); err != nil {
				writeError(w, http.StatusBadRequest, "read data part: "+err.Error())
				return false
			}
		case "url":
			writeError(w, http.StatusBadRequest, "function packages by URL are not supported: upload the module as the part data")
			return false
		}
		return true
	})
	if !ok {
		return cfg, nil, false
	}
	if !haveConfig {
		writeError(w, http.StatusBadRequest, "the multipart part functionConfig is missing")
		return cfg, nil, false
	}
	return cfg, code, bindPath(w, r, "functionConfig", &cfg.Tenant, &cfg.Namespace, &cfg.Name)
}

func (s *Server) createFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	cfg, code, ok := readFunctionUpload(w, r)
	if !ok {
		return
	}
	if !s.namespaceExists(w, r, naming.Namespace{Tenant: cfg.Tenant, Name: cfg.Namespace}) {
		return
	}
	reply(w, nil, f.Create(r.Context(), cfg, code), s.functionsFail)
}

func (s *Server) namespaceExists(w http.ResponseWriter, r *http.Request, ns naming.Namespace) bool {
	if err := ns.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	exists, err := s.meta.NamespaceExists(r.Context(), ns)
	if err != nil {
		s.internalError(w, err)
		return false
	}
	if !exists {
		writeError(w, http.StatusBadRequest, "namespace "+ns.String()+" does not exist")
		return false
	}
	return true
}

func (s *Server) updateFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	cfg, code, ok := readFunctionUpload(w, r)
	if !ok {
		return
	}
	reply(w, nil, f.Update(r.Context(), cfg, code), s.functionsFail)
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	reply(w, nil, f.Delete(r.Context(), fqfnOf(r)), s.functionsFail)
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	cfg, err := f.Get(r.Context(), fqfnOf(r))
	reply(w, cfg, err, s.functionsFail)
}

func (s *Server) functionStatus(w http.ResponseWriter, r *http.Request) {
	s.statusOrStats(w, r, "status", -1)
}

func (s *Server) functionStats(w http.ResponseWriter, r *http.Request) {
	s.statusOrStats(w, r, "stats", -1)
}

func (s *Server) statusOrStats(w http.ResponseWriter, r *http.Request, what string, instance int) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	var v any
	var err error
	if what == "status" {
		var st functions.FunctionStatus
		st, err = f.Status(r.Context(), fqfnOf(r), instance)
		v = st
		if err == nil && instance >= 0 {
			v = st.Instances[0].Status // Pulsar answers the instance's data alone
		}
	} else {
		var st functions.FunctionStats
		st, err = f.Stats(r.Context(), fqfnOf(r), instance)
		v = st
		if err == nil && instance >= 0 {
			v = st.Instances[0].Metrics
		}
	}
	reply(w, v, err, s.functionsFail)
}

func (s *Server) functionRun(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.runOp(w, r, op, -1) }
}

func (s *Server) runOp(w http.ResponseWriter, r *http.Request, op string, instance int) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	fqfn := fqfnOf(r)
	err := runOp(r.Context(), op,
		func(ctx context.Context, run bool) error { return f.SetRunning(ctx, fqfn, instance, run) },
		func(ctx context.Context) error { return f.Restart(ctx, fqfn, instance) })
	if redirectElsewhere(w, r, err) {
		return
	}
	reply(w, nil, err, s.functionsFail)
}

// functionSub serves .../{instanceId}/{status|stats|start|stop|restart}
// and .../state/{key}; a state key may hold '/' (pulsaradmin does not
// escape it).
func (s *Server) functionSub(w http.ResponseWriter, r *http.Request) {
	a, b := r.PathValue("a"), r.PathValue("b")
	if a == "state" {
		if r.Method == http.MethodGet {
			s.getFunctionState(w, r, b)
		} else {
			s.putFunctionState(w, r, b)
		}
		return
	}
	id, err := strconv.Atoi(a)
	if err != nil || id < 0 {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	switch {
	case r.Method == http.MethodGet && (b == "status" || b == "stats"):
		s.statusOrStats(w, r, b, id)
	case r.Method == http.MethodPost && (b == "start" || b == "stop" || b == "restart"):
		s.runOp(w, r, b, id)
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) getFunctionState(w http.ResponseWriter, r *http.Request, key string) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	v, err := f.State(r.Context(), fqfnOf(r), key)
	reply(w, v, err, s.functionsFail)
}

// putFunctionState takes Pulsar's shape: a multipart form whose "state"
// part is a FunctionState JSON, or that JSON as the body.
func (s *Server) putFunctionState(w http.ResponseWriter, r *http.Request, key string) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	var sv functions.StateValue
	var raw []byte
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(maxBodyBytes); err != nil {
			writeError(w, http.StatusBadRequest, "read multipart body: "+err.Error())
			return
		}
		raw = []byte(r.FormValue("state"))
	} else {
		var err error
		if raw, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
	}
	if err := json.Unmarshal(raw, &sv); err != nil {
		writeError(w, http.StatusBadRequest, "state: want a FunctionState JSON object: "+err.Error())
		return
	}
	if sv.Key != "" && sv.Key != key {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state key %q differs from the path's %q", sv.Key, key))
		return
	}
	sv.Key = key
	reply(w, nil, f.PutState(r.Context(), fqfnOf(r), sv), s.functionsFail)
}

// triggerFunction answers the first output's payload as text.
func (s *Server) triggerFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := s.functions(w, r)
	if !ok {
		return
	}
	if err := r.ParseMultipartForm(maxBodyBytes); err != nil {
		writeError(w, http.StatusBadRequest, "want a multipart/form-data body with the part data (the value) or dataStream (a file): "+err.Error())
		return
	}
	var value []byte
	if r.MultipartForm != nil && len(r.MultipartForm.Value["data"]) > 0 {
		value = []byte(r.MultipartForm.Value["data"][0])
	} else if fh, _, err := r.FormFile("dataStream"); err == nil {
		value, err = io.ReadAll(io.LimitReader(fh, maxBodyBytes))
		fh.Close()
		if err != nil {
			writeError(w, http.StatusBadRequest, "read dataStream: "+err.Error())
			return
		}
	} else {
		writeError(w, http.StatusBadRequest, "trigger needs a value: the part data or dataStream")
		return
	}
	out, err := f.Trigger(r.Context(), fqfnOf(r), strings.TrimSpace(r.FormValue("topic")), value)
	if err != nil {
		s.functionsFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}
