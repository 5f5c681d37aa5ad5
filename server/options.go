package server

import (
	"log/slog"
	"time"
)

// Options configure a standalone node. Zero values take the defaults noted.
type Options struct {
	DataDir    string // default ./data
	BrokerAddr string // default :6650
	HTTPAddr   string // default :8080
	// AdvertisedAddress is the host put in lookup answers; default localhost.
	AdvertisedAddress string
	// AdvertisedListeners are named listeners, Pulsar's advertisedListeners:
	// "name:pulsar://host:port,name:pulsar+ssl://host:port,...". A client
	// that looks up with a listener name gets that listener's URLs.
	AdvertisedListeners string
	MaxMessageSize      int    // default 5 MiB
	ClusterName         string // default standalone
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
	// CompactionMaxRate bounds the bytes per second compactions read (0: no limit).
	CompactionMaxRate int64
	// NoBackgroundYield: offloads and compactions do not pause while
	// producers publish (by default they do: internal/pace).
	NoBackgroundYield bool
	// BackgroundIdleIO: offloads and compactions read the journal at the
	// idle I/O priority class (pace.IdleIO); off by default.
	BackgroundIdleIO bool
	// BackgroundNice is the nice value offloads and compactions run at, on
	// a thread of their own (pace.Background); 0: the usual priority.
	BackgroundNice int
	// BackgroundSchedIdle also runs them under SCHED_IDLE (pace.CPU.Idle);
	// only with BackgroundNice > 0.
	BackgroundSchedIdle bool
	// DefaultRetentionMinutes / DefaultRetentionSizeMB apply to namespaces
	// without a retention policy; Pulsar's defaults are 0 and 0.
	DefaultRetentionMinutes int
	DefaultRetentionSizeMB  int64
	// DeduplicationEnabled is the default for namespaces without a policy.
	DeduplicationEnabled bool
	// KeySharedRangeSplit: Key_Shared AUTO_SPLIT splits hash ranges in
	// halves instead of a consistent-hash ring (broker.Config).
	KeySharedRangeSplit bool
	// Replicated subscriptions (broker.Config): markers off, the snapshot
	// interval (0: 1 s), and the admin-API watermark sync off.
	DisableReplicatedSubscriptions           bool
	ReplicatedSubscriptionsSnapshotFrequency time.Duration
	DisableReplicatedSubscriptionsAdminSync  bool
	// Defaults of the limit policies for namespaces and topics without
	// one (0: no limit; `mb standalone` defaults the first two to Pulsar's
	// 50000 and 200000). See broker.Config.
	MaxUnackedMessagesPerConsumer     int
	MaxUnackedMessagesPerSubscription int
	MaxSubscriptionsPerTopic          int
	MaxTopicsPerNamespace             int
	SubscriptionExpirationTimeMinutes int
	// NoAutoSubscriptionCreation refuses SUBSCRIBE to a durable
	// subscription that does not exist, where no policy allows it.
	NoAutoSubscriptionCreation bool
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
	// Functions configures the function worker (on by default).
	Functions Functions
	// Cluster turns on cluster mode (cluster.go); nil: standalone.
	Cluster *Cluster
	// Connectors configures the connectors worker (on by default).
	Connectors Connectors
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
	// ReplicatorRoles may publish replicated messages (geo-replication's
	// replicated_from), besides superusers: the roles the other clusters'
	// replicators authenticate as. Their producers still need the produce
	// permission on the replicated namespaces (superusers have it).
	ReplicatorRoles []string
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

func (opts *Options) setDefaults() {
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
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.CheckpointRetain <= 0 {
		opts.CheckpointRetain = DefaultCheckpointRetain
	}
	if opts.MinFreeDisk == "" {
		opts.MinFreeDisk = DefaultMinFreeDisk
	}
}
