package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/messagebus/messagebus/internal/broker"
)

// The brokers endpoints beyond health (superusers only, as in Pulsar): the
// live brokers, the leader, and the dynamic configuration.

// DynamicConfig is what the dynamic configuration endpoints need of the
// broker (*broker.Broker; see broker/dynconfig.go).
type DynamicConfig interface {
	DynamicConfigNames() []string
	DynamicConfigValues(ctx context.Context) (map[string]string, error)
	RuntimeConfig() map[string]string
	UpdateDynamicConfig(ctx context.Context, name, value string) error
	DeleteDynamicConfig(ctx context.Context, name string) error
}

// brokersPaths are the fixed names under /admin/v2/brokers/ that are not
// a cluster name (cluster.go's GET /admin/v2/brokers/{cluster} skips them).
var brokersPaths = map[string]bool{"health": true, "ready": true, "leaderBroker": true,
	"configuration": true, "internal-configuration": true}

func (s *Server) brokerRoutes(m *http.ServeMux) {
	const b = "/admin/v2/brokers"
	m.HandleFunc("GET "+b, s.listBrokers)
	m.HandleFunc("GET "+b+"/{cluster}", s.listClusterBrokers)
	m.HandleFunc("GET "+b+"/ready", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, "ok") })
	m.HandleFunc("GET "+b+"/leaderBroker", s.leaderBroker)
	m.HandleFunc("GET "+b+"/configuration", s.dynamicConfig(func(w http.ResponseWriter, r *http.Request, d DynamicConfig) {
		writeJSON(w, http.StatusOK, d.DynamicConfigNames())
	}))
	m.HandleFunc("GET "+b+"/configuration/values", s.dynamicConfig(func(w http.ResponseWriter, r *http.Request, d DynamicConfig) {
		v, err := d.DynamicConfigValues(r.Context())
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}))
	m.HandleFunc("GET "+b+"/configuration/runtime", s.dynamicConfig(func(w http.ResponseWriter, r *http.Request, d DynamicConfig) {
		writeJSON(w, http.StatusOK, d.RuntimeConfig())
	}))
	m.HandleFunc("POST "+b+"/configuration/{name}/{value}", s.dynamicConfig(func(w http.ResponseWriter, r *http.Request, d DynamicConfig) {
		if err := d.UpdateDynamicConfig(r.Context(), r.PathValue("name"), r.PathValue("value")); err != nil {
			s.dynamicResult(w, err)
			return
		}
		w.WriteHeader(http.StatusOK) // Pulsar answers 200 here

	}))
	m.HandleFunc("DELETE "+b+"/configuration/{name}", s.dynamicConfig(func(w http.ResponseWriter, r *http.Request, d DynamicConfig) {
		s.dynamicResult(w, d.DeleteDynamicConfig(r.Context(), r.PathValue("name")))
	}))
	m.HandleFunc("GET "+b+"/internal-configuration", func(w http.ResponseWriter, _ *http.Request) {
		// Pulsar's InternalConfigurationData; there is no ZooKeeper or
		// BookKeeper, so its fields are empty.
		writeJSON(w, http.StatusOK, map[string]string{"zookeeperServers": "", "configurationStoreServers": "",
			"ledgersRootPath": "", "stateStorageServiceUrl": ""})
	})
}

// brokers lists the live brokers' HTTP host:port: cluster mode's registry,
// or this broker alone.
func (s *Server) brokers(ctx context.Context) ([]string, error) {
	if s.cfg.Cluster != nil {
		bs, err := s.cfg.Cluster.Brokers(ctx)
		if err != nil {
			return nil, err
		}
		bs = slices.Clone(bs)
		slices.Sort(bs)
		return bs, nil
	}
	u, err := url.Parse(s.cfg.WebURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("this broker's web service URL is not known")
	}
	return []string{u.Host}, nil
}

func (s *Server) listBrokers(w http.ResponseWriter, r *http.Request) {
	bs, err := s.brokers(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, bs)
}

// listClusterBrokers answers a standalone broker's own cluster (cluster
// mode answers in cluster.go).
func (s *Server) listClusterBrokers(w http.ResponseWriter, r *http.Request) {
	if c := r.PathValue("cluster"); c != s.cfg.ClusterName {
		writeError(w, http.StatusNotFound, "Cluster "+c+" does not exist")
		return
	}
	s.listBrokers(w, r)
}

// leaderBroker answers Pulsar's leader broker. MessageBus elects no leader
// (ownership is per bundle): the broker with the lowest address answers.
func (s *Server) leaderBroker(w http.ResponseWriter, r *http.Request) {
	bs, err := s.brokers(r.Context())
	if err != nil || len(bs) == 0 {
		writeError(w, http.StatusServiceUnavailable, "no live broker")
		return
	}
	scheme := "http"
	if u, err := url.Parse(s.cfg.WebURL); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	writeJSON(w, http.StatusOK, map[string]string{"brokerId": bs[0], "serviceUrl": scheme + "://" + bs[0]})
}

func (s *Server) dynamicConfig(h func(http.ResponseWriter, *http.Request, DynamicConfig)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.cfg.Broker.(DynamicConfig)
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "broker is not running")
			return
		}
		h(w, r, d)
	}
}

func (s *Server) dynamicResult(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, broker.ErrNotDynamic), errors.Is(err, broker.ErrInvalidDynamicValue):
		writeError(w, http.StatusPreconditionFailed, err.Error())
	case errors.Is(err, broker.ErrDynamicNotSet):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		s.fail(w, err)
	}
}
