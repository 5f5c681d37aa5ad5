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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/admin"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Options configure a standalone node. Zero values take the defaults noted.
type Options struct {
	DataDir    string // default ./data
	BrokerAddr string // default :6650
	HTTPAddr   string // default :8080
	// AdvertisedAddress is the host put in lookup answers; default localhost.
	AdvertisedAddress string
	MaxMessageSize    int    // default 5 MiB
	ClusterName       string // default standalone
	// InMemory keeps messages in memory only (tests); metadata still goes to DataDir.
	InMemory bool
	// JournalSegmentSize and CacheBytes tune the storage engine (0: its defaults).
	JournalSegmentSize int64
	CacheBytes         int64
	KeepAliveInterval  time.Duration // default 30s
	// PolicyCheckInterval is how often TTL, backlog quotas and retention are
	// enforced (default 30s).
	PolicyCheckInterval time.Duration
	// DefaultRetentionMinutes / DefaultRetentionSizeMB apply to namespaces
	// without a retention policy; Pulsar's defaults are 0 and 0.
	DefaultRetentionMinutes int
	DefaultRetentionSizeMB  int64
	// DeduplicationEnabled is the default for namespaces without a policy.
	DeduplicationEnabled bool
	// HideTopicLevelMetrics emits the per-topic metrics summed per namespace,
	// without the topic label (Pulsar's exposeTopicLevelMetricsInPrometheus=false).
	HideTopicLevelMetrics bool
	Logger                *slog.Logger
}

// Server is a running standalone node.
type Server struct {
	opts    Options
	log     *slog.Logger
	meta    meta.Store
	store   ledger.Store
	delayed *delayed.Store // nil when InMemory
	broker  *broker.Broker
	http    *http.Server
	brokerL net.Listener
	httpL   net.Listener
	ready   atomic.Bool
	wg      sync.WaitGroup
	errc    chan error
}

// New opens the stores, bootstraps metadata and binds the listeners.
func New(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		opts.DataDir = "./data"
	}
	if opts.BrokerAddr == "" {
		opts.BrokerAddr = ":6650"
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = ":8080"
	}
	if opts.AdvertisedAddress == "" {
		opts.AdvertisedAddress = "localhost"
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "standalone"
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 5 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger, errc: make(chan error, 2)}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.closeStores()
		}
	}()

	md, err := meta.OpenEmbedded(filepath.Join(opts.DataDir, "meta"))
	if err != nil {
		return nil, err
	}
	s.meta = md

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fsyncs := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mb_journal_fsync_seconds",
		Help:    "Duration of journal group-commit fsyncs.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	groupEntries := prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_journal_entries_total", Help: "Entries made durable by the journal."})
	reg.MustRegister(fsyncs, groupEntries)

	if opts.InMemory {
		s.store = memory.New()
	} else {
		st, err := local.Open(local.Options{
			Dir:         filepath.Join(opts.DataDir, "ledger"),
			SegmentSize: opts.JournalSegmentSize,
			CacheBytes:  opts.CacheBytes,
			Logger:      opts.Logger.With("component", "ledger"),
			OnSync: func(d time.Duration, entries, _ int) {
				fsyncs.Observe(d.Seconds())
				groupEntries.Add(float64(entries))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		s.store = st
		ds, err := delayed.Open(filepath.Join(opts.DataDir, "delayed"), delayed.Options{
			Logger: opts.Logger.With("component", "delayed"),
		})
		if err != nil {
			return nil, err
		}
		s.delayed = ds
	}

	if s.brokerL, err = net.Listen("tcp", opts.BrokerAddr); err != nil {
		return nil, fmt.Errorf("listen on broker address: %w", err)
	}
	if s.httpL, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
		s.brokerL.Close()
		return nil, fmt.Errorf("listen on http address: %w", err)
	}

	res := &meta.Resources{Store: md}
	ctx := context.Background()
	if err := res.Bootstrap(ctx, opts.ClusterName, meta.ClusterData{ServiceURL: s.WebURL(), BrokerServiceURL: s.advertisedBrokerURL()}); err != nil {
		s.brokerL.Close()
		s.httpL.Close()
		return nil, fmt.Errorf("bootstrap metadata: %w", err)
	}
	s.broker = broker.New(broker.Config{
		ClusterName:             opts.ClusterName,
		AdvertisedURL:           s.advertisedBrokerURL(),
		MaxMessageSize:          opts.MaxMessageSize,
		KeepAliveInterval:       opts.KeepAliveInterval,
		PolicyCheckInterval:     opts.PolicyCheckInterval,
		DefaultRetentionMinutes: opts.DefaultRetentionMinutes,
		DefaultRetentionSizeMB:  opts.DefaultRetentionSizeMB,
		DeduplicationEnabled:    opts.DeduplicationEnabled,
		NamespaceLevelMetrics:   opts.HideTopicLevelMetrics,
		Delayed:                 s.delayed,
		Logger:                  opts.Logger.With("component", "broker"),
	}, s.store, res, broker.NewMetrics(reg))
	reg.MustRegister(s.broker.Collector())
	s.http = &http.Server{
		Handler: admin.New(admin.Config{
			ClusterName: opts.ClusterName,
			BrokerURL:   s.advertisedBrokerURL(),
			WebURL:      s.WebURL(),
			Logger:      opts.Logger.With("component", "admin"),
			Gatherer:    reg,
			Ready:       s.ready.Load,
			Broker:      s.broker,
		}, res),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ok = true
	return s, nil
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

// Start serves on both listeners in the background.
func (s *Server) Start() {
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
	s.ready.Store(true)
	s.log.Info("MessageBus standalone ready", "broker", s.BrokerURL(), "http", s.WebURL(), "data_dir", s.opts.DataDir)
}

// Err delivers a fatal serving error.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops accepting, finishes in-flight writes, persists cursors and
// closes the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	err := s.broker.Shutdown(ctx)
	if herr := s.http.Shutdown(ctx); herr != nil && err == nil {
		err = herr
	}
	s.wg.Wait()
	if cerr := s.closeStores(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (s *Server) closeStores() error {
	var err error
	if s.delayed != nil {
		err = s.delayed.Close()
		s.delayed = nil
	}
	if s.store != nil {
		if serr := s.store.Close(); serr != nil && err == nil {
			err = serr
		}
		s.store = nil
	}
	if s.meta != nil {
		if merr := s.meta.Close(); merr != nil && err == nil {
			err = merr
		}
		s.meta = nil
	}
	return err
}
