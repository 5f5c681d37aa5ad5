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
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/admin"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
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
	// NoJournalPreallocation makes the journal append to new segment files
	// instead of writing into zero-filled ones prepared in the background.
	NoJournalPreallocation bool
	// MinFreeDisk is the free space kept on the file system of DataDir:
	// bytes with an optional unit ("512MiB") or a percentage of the file
	// system ("5%"); default DefaultMinFreeDisk, "0" for none. Below it sends
	// fail with PersistenceError "disk full: ..." until space is freed.
	MinFreeDisk string
	// CacheTotalBytes bounds the caches of all topics together (default 512 MiB).
	CacheTotalBytes   int64
	KeepAliveInterval time.Duration // default 30s
	// PolicyCheckInterval is how often TTL, backlog quotas and retention are
	// enforced (default 30s).
	PolicyCheckInterval time.Duration
	// OperationTimeout bounds each client request and topic load (default
	// 30s); past it the client gets ServiceNotReady and retries.
	OperationTimeout time.Duration
	// CompactionCheckInterval is how often topics are checked against their
	// compaction threshold (default 60s).
	CompactionCheckInterval time.Duration
	// DefaultRetentionMinutes / DefaultRetentionSizeMB apply to namespaces
	// without a retention policy; Pulsar's defaults are 0 and 0.
	DefaultRetentionMinutes int
	DefaultRetentionSizeMB  int64
	// DeduplicationEnabled is the default for namespaces without a policy.
	DeduplicationEnabled bool
	// HideTopicLevelMetrics emits the per-topic metrics summed per namespace,
	// without the topic label (Pulsar's exposeTopicLevelMetricsInPrometheus=false).
	HideTopicLevelMetrics bool
	// EnablePprof serves Go's profiles at /debug/pprof/ on the HTTP port.
	EnablePprof bool
	// CheckpointInterval is how often the metadata store and the ledger
	// index are checkpointed into <DataDir>/checkpoints/<store>/, also once
	// at startup (0: DefaultCheckpointInterval; negative: never).
	CheckpointInterval time.Duration
	// CheckpointRetain is how many checkpoints of each store are kept
	// (0: DefaultCheckpointRetain).
	CheckpointRetain int
	Logger           *slog.Logger

	// Metadata chooses the metadata store: embedded (default) or etcd.
	Metadata Metadata

	Security
	Access Access
	// Offload configures tiered storage (off by default).
	Offload Offload
}

// Security configures authentication, authorization and TLS. Authentication
// and authorization are on as soon as a provider is configured: a token key
// (token provider) or a trust store for client certificates (TLS provider).
type Security struct {
	// AuthTokenSecretKey is an HS256 secret key file (raw bytes or a
	// data:;base64, URL); AuthTokenPublicKey an RS256/ES256 public key file
	// (PEM or DER). At most one of them.
	AuthTokenSecretKey string
	AuthTokenPublicKey string
	// BasicAuthConf turns on basic authentication (Pulsar's
	// basicAuthConf): a file of user:hash lines, as a path, a file: or
	// data: URL, or base64 content (auth.LoadBasicUsers).
	BasicAuthConf string
	// AuthTokenRoleClaim names the claim holding the role (default "sub").
	AuthTokenRoleClaim string
	// SuperuserRoles may do everything.
	SuperuserRoles []string
	// AnonymousRole is given to clients without credentials; empty refuses them.
	AnonymousRole string
	// AuthRefreshTimeout is how long a client has to send fresh credentials
	// after its own expire (default 30s).
	AuthRefreshTimeout time.Duration

	// BrokerTLSAddr (pulsar+ssl) and HTTPSAddr are served when set; both
	// need TLSCertFile and TLSKeyFile.
	BrokerTLSAddr string
	HTTPSAddr     string
	TLSCertFile   string
	TLSKeyFile    string
	// TLSTrustCertsFile holds the CAs client certificates are verified
	// against; setting it turns on TLS client-certificate authentication.
	TLSTrustCertsFile string
	// TLSRequireClientCert refuses TLS clients without a valid certificate.
	TLSRequireClientCert bool
	// RefusePlaintextCredentials refuses credentials (tokens, any
	// authentication data) on the plaintext listeners BrokerAddr and
	// HTTPAddr; clients without credentials are served there as before.
	// Needs a certificate and a TLS listener to send clients to. Off by
	// default, as in Pulsar, whose plaintext ports take tokens.
	RefusePlaintextCredentials bool
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
	ckpt       *checkpoints // nil when checkpoints are off
	ready      atomic.Bool
	wg         sync.WaitGroup
	errc       chan error
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
	s := &Server{opts: opts, log: opts.Logger, errc: make(chan error, 5)}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			if s.stopPolicies != nil {
				s.stopPolicies()
				s.wg.Wait()
			}
			s.closeStores()
		}
	}()

	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.CheckpointRetain <= 0 {
		opts.CheckpointRetain = DefaultCheckpointRetain
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	md, embeddedMeta, err := s.openMetadata(reg)
	if err != nil {
		return nil, err
	}
	if opts.Metadata.Wrap != nil {
		md = opts.Metadata.Wrap(md)
	}
	s.meta = md
	fsyncs := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mb_journal_fsync_seconds",
		Help:    "Duration of journal group commits: write and fdatasync.",
		Buckets: broker.LatencyBuckets,
	})
	groupEntries := prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_journal_entries_total", Help: "Entries made durable by the journal."})
	segments := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_journal_segments_total",
		Help: "Journal segments started, by where they came from: recycled, zero_filled (preallocated) or appended (a new file)."},
		[]string{"source"})
	preallocSkipped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_journal_prealloc_skipped_total",
		Help: "Spare journal segments not zero-filled, by reason: low_disk (it would leave less than the reserve free)."},
		[]string{"reason"})
	reg.MustRegister(fsyncs, groupEntries, segments, preallocSkipped)
	if opts.MinFreeDisk == "" {
		opts.MinFreeDisk = DefaultMinFreeDisk
	}
	minFree, err := local.ParseDiskReserve(opts.MinFreeDisk)
	if err != nil {
		return nil, fmt.Errorf("min free disk: %w", err)
	}
	if opts.CheckpointInterval > 0 {
		s.ckpt = newCheckpoints(opts.DataDir, opts.CheckpointInterval, opts.CheckpointRetain, reg)
		if embeddedMeta != nil { // etcd keeps its own snapshots
			s.ckpt.add(StoreMetadata, embeddedMeta.Checkpoint, reg)
		}
	}

	if opts.InMemory {
		s.store = memory.New()
	} else {
		st, err := local.Open(local.Options{
			Dir:                  filepath.Join(opts.DataDir, "ledger"),
			SegmentSize:          opts.JournalSegmentSize,
			DisablePreallocation: opts.NoJournalPreallocation,
			OnRoll:               func(source string) { segments.WithLabelValues(source).Inc() },
			MinFreeDisk:          minFree,
			OnPreallocSkipped:    func(reason string) { preallocSkipped.WithLabelValues(reason).Inc() },
			CacheBytes:           opts.CacheBytes,
			CacheTotalBytes:      opts.CacheTotalBytes,
			Logger:               opts.Logger.With("component", "ledger"),
			OnSync: func(d time.Duration, entries, _ int) {
				fsyncs.Observe(d.Seconds())
				groupEntries.Add(float64(entries))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", withRestoreHint(err, opts.DataDir))
		}
		if s.store, err = s.withOffload(st, reg); err != nil {
			st.Close()
			return nil, err
		}
		if s.ckpt != nil {
			s.ckpt.add(StoreIndex, st.CheckpointIndex, reg)
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mb_ledger_cache_bytes", Help: "Bytes of recent entries cached in memory, all topics together.",
		}, func() float64 { return float64(st.CacheBytes()) }))
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mb_storage_corrupt_records_total",
				Help: "Damaged journal records and ranges of bytes found, at recovery and by reads."},
				func() float64 { return float64(st.Damage().CorruptRecords) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mb_storage_lost_entries_total",
				Help: "Entries lost to damaged storage: skipped by reads, never served."},
				func() float64 { return float64(st.Damage().LostEntries) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mb_storage_quarantined_records",
				Help: "Journal records of ledgers the index does not know: never served; their segments are kept."},
				func() float64 { return float64(st.Damage().QuarantinedRecords) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mb_storage_disk_full", Help: "1 while sends are refused for lack of disk space (below --min-free-disk, or the file system full), else 0.",
		}, func() float64 {
			if st.DiskFull() {
				return 1
			}
			return 0
		}))
		ds, err := delayed.Open(storeDir(opts.DataDir, StoreDelayed), delayed.Options{
			Logger: opts.Logger.With("component", "delayed"),
		})
		if err != nil {
			return nil, withRestoreHint(err, opts.DataDir)
		}
		s.delayed = ds
	}

	res := &meta.Resources{Store: md}
	keys, err := accessKeys(opts)
	if err != nil {
		return nil, err
	}
	// One policy source for authorization and the broker (kept fresh by a
	// watch until Shutdown).
	policies := meta.NewPolicyCache(res, opts.OperationTimeout)
	var policyCtx context.Context
	policyCtx, s.stopPolicies = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		policies.Run(policyCtx)
	}()
	authService, err := newAuthService(opts.Security, policies, keys)
	if err != nil {
		return nil, err
	}
	if s.tlsConfig, err = newTLSConfig(opts.Security); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		s.closeListeners()
		return nil, err
	}

	ctx := context.Background()
	// Before Bootstrap: whether a cluster exists yet tells a new store from
	// one written before generator ids existed.
	producerGenID, err := res.NextProducerNameGeneratorID(ctx)
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("producer name generator: %w", err)
	}
	if err := res.Bootstrap(ctx, opts.ClusterName, meta.ClusterData{ServiceURL: s.WebURL(), BrokerServiceURL: s.advertisedBrokerURL()}); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("bootstrap metadata: %w", err)
	}
	if err := s.newAccess(authService, res, keys, reg); err != nil {
		s.closeListeners()
		return nil, err
	}
	// One registry for the binary protocol and the admin API.
	schemas := schema.NewRegistry(res, schema.NewMetrics(reg))
	s.broker = broker.New(broker.Config{
		Schemas:                 schemas,
		ClusterName:             opts.ClusterName,
		ProducerNameGeneratorID: producerGenID,
		AdvertisedURL:           s.advertisedBrokerURL(),
		AdvertisedTLSURL:        s.advertisedBrokerTLSURL(),
		Auth:                    authService,
		AuthRefreshTimeout:      opts.AuthRefreshTimeout,
		RefusePlaintextCreds:    opts.Security.RefusePlaintextCredentials,
		MaxMessageSize:          opts.MaxMessageSize,
		KeepAliveInterval:       opts.KeepAliveInterval,
		PolicyCheckInterval:     opts.PolicyCheckInterval,
		OperationTimeout:        opts.OperationTimeout,
		Policies:                policies,
		CompactionCheckInterval: opts.CompactionCheckInterval,
		DefaultRetentionMinutes: opts.DefaultRetentionMinutes,
		DefaultRetentionSizeMB:  opts.DefaultRetentionSizeMB,
		DeduplicationEnabled:    opts.DeduplicationEnabled,
		NamespaceLevelMetrics:   opts.HideTopicLevelMetrics,
		Delayed:                 s.delayed,
		Logger:                  opts.Logger.With("component", "broker"),
	}, s.store, res, broker.NewMetrics(reg))
	reg.MustRegister(s.broker.Collector())
	var accessREST http.Handler
	if s.access != nil {
		accessREST = s.access.HTTPHandler()
	}
	s.http = &http.Server{
		Handler: admin.New(admin.Config{
			ClusterName:                opts.ClusterName,
			BrokerURL:                  s.advertisedBrokerURL(),
			WebURL:                     s.WebURL(),
			Logger:                     opts.Logger.With("component", "admin"),
			Gatherer:                   reg,
			Pprof:                      opts.EnablePprof,
			Access:                     accessREST,
			Ready:                      s.ready.Load,
			Health:                     storeHealth(s.store),
			Broker:                     s.broker,
			Auth:                       authService,
			RefusePlaintextCredentials: opts.Security.RefusePlaintextCredentials,
			BrokerURLTLS:               s.advertisedBrokerTLSURL(),
			WebURLTLS:                  s.WebTLSURL(),
			Schemas:                    schemas,
		}, res),
		// Slow or idle clients must not hold connections forever; bodies are
		// small (policies, access requests) except the pprof trace, which
		// writes, not reads.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if s.ckpt != nil {
		s.ckpt.takeAll(s) // the stores just opened whole: keep that state
		s.ckpt.start(s)
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
	err := s.broker.Shutdown(ctx)
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

func (s *Server) closeStores() error {
	if s.ckpt != nil {
		s.ckpt.halt()
		s.ckpt = nil
	}
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

// DefaultMinFreeDisk is Options.MinFreeDisk when unset: enough for cursors
// and metadata to be written once sends are refused, on small and large disks.
const DefaultMinFreeDisk = "1%"

// storeHealth returns the store's health problems, nil when it reports none.
func storeHealth(st ledger.Store) func() []string {
	if hr, ok := st.(ledger.HealthReporter); ok {
		return hr.Health
	}
	return nil
}
