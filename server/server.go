// Package server runs a complete MessageBus standalone node in-process:
// metadata store, storage engine, Pulsar protocol broker and admin HTTP API.
// cmd/mb uses it, and Go programs can embed a broker in their own tests:
//
//	s, err := server.New(server.Options{DataDir: dir, BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
//	...
//	s.Start()
//	defer s.Shutdown(context.Background())
//	client, _ := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL()})
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/cluster"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/functions"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/etcd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
)

// Server is a running standalone node.
type Server struct {
	opts    Options
	log     *slog.Logger
	meta    meta.Store
	store   ledger.Store
	etcd    *etcd.Store      // the metadata store when it is etcd
	owner   *cluster.Manager // cluster mode's ownership; nil standalone
	workers *cluster.Workers // cluster mode's instance placement; nil standalone
	// listeners are the named advertised listeners (--advertised-listeners).
	listeners map[string]broker.Listener
	delayed   *delayed.Store // nil when InMemory
	broker    *broker.Broker
	http      *http.Server
	// stopPolicies ends the policy cache's watch.
	stopPolicies context.CancelFunc
	brokerL      net.Listener
	httpL        net.Listener
	// brokerTLSL and httpsL are nil unless TLS is configured; tlsConfig
	// wraps them when serving.
	brokerTLSL net.Listener
	httpsL     net.Listener
	tlsConfig  *tls.Config
	// The access control plane; grpc is nil when it is off.
	grpc       *grpc.Server
	grpcL      net.Listener
	access     *access.Service
	stopAccess context.CancelFunc
	ckpt       *checkpoints        // nil when checkpoints are off
	functions  *functions.Manager  // nil when the worker is off
	connectors *connectors.Manager // nil when the worker is off
	ready      atomic.Bool
	wg         sync.WaitGroup
	errc       chan error
}

// New opens the stores, bootstraps metadata and binds the listeners. Each
// step is a method in the file named after it.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	listeners, err := parseListeners(opts.AdvertisedListeners)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, errc: make(chan error, 5), listeners: listeners}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.abort()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.MetricsGC, collectors.MetricsMemory, collectors.MetricsScheduler)), // scheduler: goroutine run latency, stop-the-world pauses
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.CheckpointInterval > 0 {
		s.ckpt = newCheckpoints(opts.DataDir, opts.CheckpointInterval, opts.CheckpointRetain, reg)
	}
	if err := s.openMetadataStore(reg); err != nil { // metadata.go
		return nil, err
	}
	if err := s.openStorage(reg); err != nil { // storage.go
		return nil, err
	}
	res := &meta.Resources{Store: s.meta}
	keys, err := accessKeys(opts) // access.go
	if err != nil {
		return nil, err
	}
	policies := s.startPolicies(res)                    // metadata.go
	authService, err := s.setupSecurity(policies, keys) // security.go
	if err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil { // security.go
		return nil, err
	}
	if opts.Cluster != nil {
		if err := s.openCluster(reg); err != nil { // cluster.go
			return nil, err
		}
		s.workers = cluster.NewWorkers(s.owner, cluster.WorkersOptions{Registerer: reg}) // workers.go
	}
	producerGenID, err := s.bootstrap(context.Background(), res) // broker.go
	if err != nil {
		return nil, err
	}
	if err := s.newAccess(authService, res, keys, reg); err != nil { // access.go
		return nil, err
	}
	schemas := s.newBroker(res, policies, authService, producerGenID, reg) // broker.go
	fnOff, err := s.newFunctions(res, authService, reg)                    // functions.go
	if err != nil {
		return nil, err
	}
	connOff, err := s.newConnectors(authService, schemas, reg) // connectors.go
	if err != nil {
		return nil, err
	}
	s.newHTTP(res, authService, schemas, reg, fnOff, connOff) // http.go
	if s.ckpt != nil {
		s.ckpt.takeAll(s) // the stores just opened whole: keep that state
		s.ckpt.start(s)
	}
	ok = true
	return s, nil
}

// abort undoes a New that failed part way.
func (s *Server) abort() {
	if s.workers != nil {
		s.workers.Close()
	}
	if s.functions != nil {
		s.functions.Close()
	}
	if s.owner != nil {
		s.owner.Close()
	}
	if s.connectors != nil {
		s.connectors.Close()
	}
	s.closeListeners()
	if s.stopPolicies != nil {
		s.stopPolicies()
		s.wg.Wait()
	}
	s.closeStores()
}

func port(l net.Listener) string {
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (s *Server) advertisedBrokerURL() string {
	return "pulsar://" + net.JoinHostPort(s.opts.AdvertisedAddress, port(s.brokerL))
}

// BrokerURL is a pulsar:// URL clients on this machine can use.
func (s *Server) BrokerURL() string {
	return "pulsar://" + net.JoinHostPort(loopbackHost(s.brokerL), port(s.brokerL))
}

// advertisedWebURL is the http:// URL lookups and the brokers endpoints
// give out: the advertised host, as Pulsar's webServiceUrl.
func (s *Server) advertisedWebURL() string {
	return "http://" + net.JoinHostPort(s.opts.AdvertisedAddress, port(s.httpL))
}

// WebURL is the http:// URL of the admin API.
func (s *Server) WebURL() string {
	return "http://" + net.JoinHostPort(loopbackHost(s.httpL), port(s.httpL))
}

func loopbackHost(l net.Listener) string {
	ip := l.Addr().(*net.TCPAddr).IP
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return ip.String()
}

// Start serves on every listener in the background.
func (s *Server) Start() {
	if s.brokerTLSL != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.broker.Serve(tls.NewListener(s.brokerTLSL, s.tlsConfig)); err != nil {
				s.errc <- fmt.Errorf("broker tls: %w", err)
			}
		}()
	}
	if s.httpsL != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(tls.NewListener(s.httpsL, s.tlsConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errc <- fmt.Errorf("https: %w", err)
			}
		}()
	}
	s.startAccess()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.broker.Serve(s.brokerL); err != nil {
			s.errc <- fmt.Errorf("broker: %w", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(s.httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("http: %w", err)
		}
	}()
	s.startFunctions()
	s.startConnectors()
	s.startWorkers() // workers.go
	s.ready.Store(true)
	s.log.Info("MessageBus standalone ready", "broker", s.BrokerURL(), "http", s.WebURL(),
		"broker_tls", s.BrokerTLSURL(), "https", s.WebTLSURL(), "auth", s.broker.AuthEnabled(), "data_dir", s.opts.DataDir, "metadata", s.metadataName())
}

func (s *Server) metadataName() string {
	if s.opts.Metadata.IsEmbedded() {
		return "embedded"
	}
	return s.opts.Metadata.Store
}

// Err delivers a fatal serving error.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops accepting, finishes in-flight writes, persists cursors and
// closes the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.shutdownAccess(ctx)
	if s.workers != nil {
		s.workers.Close() // no instance is placed while the workers stop
	}
	if s.functions != nil {
		s.functions.Close() // its consumers leave before the broker stops
	}
	if s.connectors != nil {
		s.connectors.Close() // likewise its producers and consumers
	}
	var err error
	if s.owner != nil {
		// Hand the bundles over: their topics are unloaded here and their
		// owner keys deleted, so other brokers take them at once.
		err = s.owner.Close()
	}
	if berr := s.broker.Shutdown(ctx); berr != nil && err == nil {
		err = berr
	}
	if herr := s.http.Shutdown(ctx); herr != nil && err == nil {
		err = herr
	}
	s.stopPolicies()
	s.wg.Wait()
	if cerr := s.closeStores(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
