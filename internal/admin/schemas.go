package admin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
)

// Schema registry endpoints (Pulsar's SchemasResource) and the schema
// policies of namespaces. Topics are named without a domain, as in Pulsar:
// /admin/v2/schemas/{tenant}/{ns}/{topic}/... is the persistent topic. A
// partition's or a partitioned topic's name reaches the same schema.

func (s *Server) schemaRoutes(m *http.ServeMux) {
	const topic = "/admin/v2/schemas/{tenant}/{ns}/{topic}/"
	m.HandleFunc("GET "+topic+"schema", s.schemaTopic(s.getSchema))
	m.HandleFunc("GET "+topic+"schema/{version}", s.schemaTopic(s.getSchemaVersion))
	m.HandleFunc("GET "+topic+"schemas", s.schemaTopic(s.getAllSchemas))
	m.HandleFunc("POST "+topic+"schema", s.schemaTopic(s.postSchema))
	m.HandleFunc("DELETE "+topic+"schema", s.schemaTopic(s.deleteSchema))
	m.HandleFunc("POST "+topic+"compatibility", s.schemaTopic(s.testCompatibility))
	m.HandleFunc("POST "+topic+"version", s.schemaTopic(s.schemaVersionOf))

	const ns = "/admin/v2/namespaces/{tenant}/{ns}/"
	getStrategy := func(w http.ResponseWriter, r *http.Request) {
		if p, ok := s.namespacePolicies(w, r); ok {
			// The namespace's own value, UNDEFINED when unset, as Pulsar.
			// A bare JSON string: pulsaradmin strips the quotes and
			// parses the rest, a trailing newline included.
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(strconv.Quote(string(schema.NamespaceStrategy(p)))))
		}
	}
	setStrategy := func(w http.ResponseWriter, r *http.Request) {
		var raw rawBody
		if !requireBody(w, r, maxValueBytes, &raw, "a schema compatibility strategy") {
			return
		}
		var name string
		if err := decode(raw, &name, "a schema compatibility strategy (a JSON string)"); err != nil {
			s.fail(w, err)
			return
		}
		st, err := schema.ParseStrategy(name)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error {
			p.SchemaCompatibilityStrategy = storedStrategy(st)
			return nil
		})
	}
	m.HandleFunc("GET "+ns+"schemaCompatibilityStrategy", getStrategy)
	m.HandleFunc("PUT "+ns+"schemaCompatibilityStrategy", setStrategy)
	m.HandleFunc("POST "+ns+"schemaCompatibilityStrategy", setStrategy)
	m.HandleFunc("DELETE "+ns+"schemaCompatibilityStrategy", func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *meta.Policies) error { p.SchemaCompatibilityStrategy = ""; return nil })
	})
	s.boolPolicy(m, ns+"isAllowAutoUpdateSchema", func(p *meta.Policies) bool { return schema.AutoUpdateAllowed(*p) },
		func(p *meta.Policies, v bool) { p.IsAllowAutoUpdateSchema = &v })
	s.boolPolicy(m, ns+"schemaValidationEnforced", func(p *meta.Policies) bool { return p.SchemaValidationEnforced },
		func(p *meta.Policies, v bool) { p.SchemaValidationEnforced = v })
}

// storedStrategy is how a strategy is kept: UNDEFINED as unset.
func storedStrategy(st schema.Strategy) string {
	if st == schema.Undefined {
		return ""
	}
	return string(st)
}

// boolPolicy registers GET (the value, default applied) and POST/PUT (a
// JSON boolean) on path.
func (s *Server) boolPolicy(m *http.ServeMux, path string, get func(*meta.Policies) bool, set func(*meta.Policies, bool)) {
	m.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		if p, ok := s.namespacePolicies(w, r); ok {
			writeJSON(w, http.StatusOK, get(&p))
		}
	})
	put := func(w http.ResponseWriter, r *http.Request) {
		var v bool
		if !requireBody(w, r, maxValueBytes, &v, "true or false") {
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error { set(p, v); return nil })
	}
	m.HandleFunc("POST "+path, put)
	m.HandleFunc("PUT "+path, put)
}

// schemaTopic parses the path's topic (persistent) and checks its
// namespace exists.
func (s *Server) schemaTopic(h topicHandler) http.HandlerFunc {
	return s.topic(naming.Persistent, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		if err := s.checkNamespace(r.Context(), t); err != nil {
			s.fail(w, err)
			return
		}
		h(w, r, t)
	})
}

// getSchemaResponse is Pulsar's GetSchemaResponse.
type getSchemaResponse struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func schemaView(rec meta.SchemaRecord) getSchemaResponse {
	props := rec.Properties
	if props == nil {
		props = map[string]string{}
	}
	return getSchemaResponse{Version: rec.Version, Type: rec.Type, Timestamp: rec.Timestamp, Data: string(rec.Data), Properties: props}
}

// postSchemaPayload is Pulsar's PostSchemaPayload.
type postSchemaPayload struct {
	Type       string            `json:"type"`
	Schema     string            `json:"schema"`
	Properties map[string]string `json:"properties"`
}

// readSchemaPayload decodes and checks an upload body (400 when malformed,
// 422 when the definition is invalid for its type).
func readSchemaPayload(w http.ResponseWriter, r *http.Request) (schema.Info, bool) {
	var p postSchemaPayload
	if !requireBody(w, r, maxBodyBytes, &p, `a schema payload {"type": "AVRO", "schema": "...", "properties": {}}`) {
		return schema.Info{}, false
	}
	if p.Type == "" {
		writeError(w, http.StatusBadRequest, `schema payload has no "type" (AVRO, JSON, PROTOBUF, STRING, ...)`)
		return schema.Info{}, false
	}
	typ, err := schema.ParseType(p.Type)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return schema.Info{}, false
	}
	info := schema.Info{Type: typ, Data: []byte(p.Schema), Properties: p.Properties}
	if info.Properties == nil {
		info.Properties = map[string]string{}
	}
	if err := schema.Validate(info); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return schema.Info{}, false
	}
	return info, true
}

// schemaError answers registry errors: 404 no schema, 409 incompatible,
// 422 invalid.
func (s *Server) schemaError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, schema.ErrNoSchema):
		writeError(w, http.StatusNotFound, err.Error())
	case schema.IsIncompatible(err):
		writeError(w, http.StatusConflict, err.Error())
	case schema.IsInvalid(err):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		s.fail(w, err)
	}
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	rec, err := s.schemas.Latest(r.Context(), t)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, schemaView(rec))
}

func (s *Server) getSchemaVersion(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	v, ok := intPathValue(w, r, "version")
	if !ok {
		return
	}
	rec, err := s.schemas.Version(r.Context(), t, v)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, schemaView(rec))
}

func (s *Server) getAllSchemas(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	recs, err := s.schemas.All(r.Context(), t)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	out := make([]getSchemaResponse, len(recs))
	for i, rec := range recs {
		out[i] = schemaView(rec)
	}
	writeJSON(w, http.StatusOK, map[string]any{"getSchemaResponses": out})
}

// strategy is the strategy in force for t: the topic's, else the
// namespace's, else the broker default.
func (s *Server) strategy(r *http.Request, t naming.Topic) (schema.Strategy, error) {
	p, err := s.meta.Namespace(r.Context(), t.Namespace)
	if err != nil {
		return "", err
	}
	tp, err := s.meta.TopicPolicies(r.Context(), t)
	if err != nil {
		return "", err
	}
	return schema.EffectiveStrategy(tp.Over(p)), nil
}

// postSchema uploads a schema: a new version unless it equals a live one;
// the namespace's strategy applies, auto update does not (as in Pulsar).
func (s *Server) postSchema(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	info, ok := readSchemaPayload(w, r)
	if !ok {
		return
	}
	st, err := s.strategy(r, t)
	if err != nil {
		s.fail(w, err)
		return
	}
	v, err := s.schemas.Register(r.Context(), t, info, st)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v})
}

func (s *Server) deleteSchema(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	v, err := s.schemas.Delete(r.Context(), t, force)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v})
}

// testCompatibility answers as Pulsar's IsCompatibilityResponse, whose
// Jackson name for the flag is "compatibility" (what pulsaradmin reads);
// "isCompatible" says the same for readers that look for that name.
func (s *Server) testCompatibility(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	info, ok := readSchemaPayload(w, r)
	if !ok {
		return
	}
	st, err := s.strategy(r, t)
	if err != nil {
		s.fail(w, err)
		return
	}
	err = s.schemas.Compatible(r.Context(), t, info, st)
	if err != nil && !schema.IsIncompatible(err) {
		s.schemaError(w, err)
		return
	}
	resp := map[string]any{"compatibility": err == nil, "isCompatible": err == nil, "schemaCompatibilityStrategy": st}
	if err != nil {
		resp["reason"] = err.Error()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) schemaVersionOf(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	info, ok := readSchemaPayload(w, r)
	if !ok {
		return
	}
	v, err := s.schemas.VersionOf(r.Context(), t, info)
	if err != nil {
		s.schemaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v})
}

// schemaStrategyTopicPolicy is a topic's schemaCompatibilityStrategy: GET
// gives the topic's own (204 when unset), ?applied=true the one in force
// (the topic's, else the namespace's, else the broker default FULL).
var schemaStrategyTopicPolicy = topicPolicy{
	what: "a schema compatibility strategy (a JSON string)",
	get: func(tp *meta.TopicPolicies) any {
		if tp.SchemaCompatibilityStrategy == "" {
			return nil
		}
		return tp.SchemaCompatibilityStrategy
	},
	applied: func(p *meta.Policies) any { return schema.EffectiveStrategy(*p) },
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		var name string
		if err := decode(body, &name, "a schema compatibility strategy (a JSON string)"); err != nil {
			return err
		}
		st, err := schema.ParseStrategy(name)
		if err != nil {
			return errorf(http.StatusBadRequest, "%v", err)
		}
		tp.SchemaCompatibilityStrategy = storedStrategy(st)
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.SchemaCompatibilityStrategy = "" },
	put:    true,
}

// schemaValidationTopicPolicy is a topic's schemaValidationEnforced.
var schemaValidationTopicPolicy = topicPolicy{
	what: "true or false",
	get: func(tp *meta.TopicPolicies) any {
		if tp.SchemaValidationEnforced == nil {
			return nil
		}
		return *tp.SchemaValidationEnforced
	},
	applied: func(p *meta.Policies) any { return p.SchemaValidationEnforced },
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		var v bool
		if err := decode(body, &v, "true or false"); err != nil {
			return err
		}
		tp.SchemaValidationEnforced = &v
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.SchemaValidationEnforced = nil },
}
