package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/server"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// shutdownTimeout bounds a graceful stop; SIGTERM must end the process within seconds.
const shutdownTimeout = 10 * time.Second

func newStandaloneCommand() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "standalone",
		Short: "Run a single-node broker with embedded storage",
		Long: `Run broker, admin API, metadata store and storage in one process.

Every flag can also be set with an environment variable (MB_ and the flag name
in upper case with - as _, e.g. MB_DATA_DIR) or in a config file (--config,
YAML, JSON or TOML, keys named like the flags). Flags win over the environment,
which wins over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, v); err != nil {
				return err
			}
			return runServer(v, nil)
		},
	}
	f := cmd.Flags()
	addOffloadFlags(f)
	f.String("config", "", "config file (YAML, JSON or TOML)")
	f.String("data-dir", "./data", "directory for messages, cursors and metadata")
	f.String("broker-addr", ":6650", "listen address of the Pulsar binary protocol")
	f.String("http-addr", ":8080", "listen address of the admin REST API, metrics and health")
	f.String("advertised-address", "localhost", "host name given to clients in lookup answers")
	f.String("advertised-listeners", "", "named listeners for clients that look up with a listener name, as Pulsar's advertisedListeners: name:pulsar://host:port[,name:pulsar+ssl://host:port,...]")
	f.String("cluster-name", "standalone", "name of this cluster")
	f.Int("max-message-size", 5<<20, "largest message accepted, in bytes (headers and payload)")
	f.Int64("journal-segment-size", 128<<20, "journal segment size in bytes")
	f.Bool("journal-preallocate", true, "write the journal into segments zero-filled in the background (fdatasync without a size change is about twice as fast on ext4)")
	f.String("min-free-disk", server.DefaultMinFreeDisk, "free space kept on the data dir's file system: bytes with a unit (512MiB) or a percentage (5%); below it sends fail with PersistenceError \"disk full\" until space is freed; 0: none")
	f.Int64("cache-size", 32<<20, "per-topic cache of recent entries, in bytes")
	f.Int64("cache-total-size", 512<<20, "all topics' caches together, in bytes; idle topics' caches shrink first")
	f.Int64("memory-limit", 0, "soft limit of the Go heap in bytes (0: 1.5 x cache-total-size + 256 MiB; -1: none; GOMEMLIMIT wins)")
	f.Int("default-retention-time-minutes", 0, "retention of consumed messages for namespaces without a policy (-1: unlimited)")
	f.Int64("default-retention-size-mb", 0, "retention size of consumed messages for namespaces without a policy (-1: unlimited)")
	f.Bool("deduplication-enabled", false, "deduplicate producers' resends in namespaces without a policy")
	f.Bool("enable-replicated-subscriptions", true, "replicated subscriptions by markers, as Pulsar's enableReplicatedSubscriptions: snapshots of topics with a replicated subscription, and processing of replicated markers")
	f.Int("replicated-subscriptions-snapshot-frequency-millis", 1000, "how often a topic with a replicated subscription takes a snapshot of the clusters' positions (Pulsar's replicatedSubscriptionsSnapshotFrequencyMillis)")
	f.Bool("replicated-subscriptions-admin-sync", true, "also post replicated subscriptions' progress once a second to the remote's admin API (replicatedPosition; between mb clusters only, finer than snapshots)")
	f.Bool("key-shared-consistent-hashing", true, "Key_Shared AUTO_SPLIT subscriptions spread keys on a consistent-hash ring (100 points per consumer); false: split hash ranges in halves, as Pulsar's subscriptionKeySharedUseConsistentHashing=false")
	f.Int("max-unacked-messages-per-consumer", 50000, "unacknowledged messages a Shared or Key_Shared consumer may hold before dispatch to it pauses, for namespaces and topics without a policy (0: no limit)")
	f.Int("max-unacked-messages-per-subscription", 200000, "unacknowledged messages a Shared or Key_Shared subscription may hold before its dispatch pauses, for namespaces and topics without a policy (0: no limit)")
	f.Int("max-subscriptions-per-topic", 0, "subscriptions a topic may have, for namespaces and topics without a policy (0: no limit)")
	f.Int("max-topics-per-namespace", 0, "topics (partitions counted) a namespace may have, for namespaces without a policy (0: no limit)")
	f.Int("subscription-expiration-time-minutes", 0, "delete durable subscriptions without consumers for this long, for namespaces without a policy (0: never)")
	f.Bool("allow-auto-subscription-creation", true, "let a consumer create a durable subscription that does not exist, for namespaces and topics without an autoSubscriptionCreation policy (false: SUBSCRIBE fails with SubscriptionNotFound \"Subscription does not exist\")")
	f.Bool("expose-topic-level-metrics", true, "label metrics by topic; false sums them per namespace (fewer series)")
	f.Duration("policy-check-interval", 30*time.Second, "how often message TTL, backlog quotas and retention are enforced")
	f.Duration("operation-timeout", 30*time.Second, "bound on each client request (lookup, producer, subscribe, ...) and topic load; past it the request is answered with a retriable error (ServiceNotReady, MetadataError for lookups)")
	f.Duration("compaction-check-interval", time.Minute, "how often topics are checked against their compaction threshold")
	f.Int64("compaction-max-rate", 0, "bytes per second compactions may read, over all topics (0: no limit)")
	f.Bool("background-yield", true, "offloads and compactions pause after each step for as long as it ran while producers publish (false: full speed)")
	f.Int("background-nice", pace.DefaultCPU.Nice, "nice value (1-19) offloads and compactions run at, each on an OS thread of its own, with one more GOMAXPROCS while they run (Linux): producers' threads take the cores first; 0: the usual priority")
	f.Bool("background-sched-idle", pace.DefaultCPU.Idle, "with --background-nice above 0, offloads' and compactions' threads also run under the SCHED_IDLE policy (Linux): a producer's thread that wakes preempts them at once instead of after their time slice")
	f.Bool("background-idle-io", false, "offloads and compactions read the journal at the idle I/O priority class (Linux ioprio; the disk serves producers' writes first, and an idle-class read may wait seconds on a busy disk); false: the usual priority")
	f.Duration("checkpoint-interval", server.DefaultCheckpointInterval, "how often the metadata store and the ledger index are checkpointed into <data-dir>/checkpoints/ (also at startup; 0: never)")
	f.Int("checkpoint-retain", server.DefaultCheckpointRetain, "checkpoints kept per store")
	f.String("metadata-store", "", "metadata store: empty or embedded for the embedded store in <data-dir>/meta, or etcd://host:port[,host:port...]")
	f.String("metadata-prefix", "/messagebus", "key prefix in etcd, so several clusters can share one etcd")
	f.Duration("metadata-timeout", 5*time.Second, "deadline of each etcd request (and of connecting)")
	f.String("metadata-user", "", "etcd user name (password: --metadata-password-file or env MB_METADATA_PASSWORD)")
	f.String("metadata-password-file", "", "file holding the etcd user's password")
	f.Bool("metadata-tls", false, "connect to etcd with TLS, verified with the system's CAs unless --metadata-tls-ca-file is set")
	f.String("metadata-tls-ca-file", "", "CA certificates (PEM) that verify etcd's certificate; turns on TLS")
	f.String("metadata-tls-cert-file", "", "client certificate (PEM) for etcd; turns on TLS")
	f.String("metadata-tls-key-file", "", "client private key (PEM) for etcd")
	f.String("auth-token-secret-key", "", "HS256 secret key file for token authentication (raw bytes or data:;base64,...)")
	f.String("auth-token-public-key", "", "RS256/ES256 public key file (PEM or DER) for token authentication")
	f.String("auth-token-role-claim", "sub", "token claim that holds the role")
	f.String("basic-auth-conf", "", "turn on basic authentication (user and password, as Pulsar's basicAuthConf): a file of user:hash lines ($apr1$, bcrypt, $1$/$5$/$6$), given as a path, a file: or data: URL, or base64 content")
	f.String("superuser-roles", "", "comma-separated roles that may do everything")
	f.String("replicator-roles", "", "comma-separated roles that may publish geo-replicated messages (replicated_from), besides superusers")
	f.String("anonymous-role", "", "role given to clients without credentials (unset: they are refused)")
	f.Duration("auth-refresh-timeout", 30*time.Second, "how long a client has to send fresh credentials after its own expire")
	f.String("broker-tls-addr", "", "listen address of the Pulsar binary protocol over TLS (pulsar+ssl)")
	f.String("https-addr", "", "listen address of the admin REST API over TLS")
	f.String("tls-cert-file", "", "server certificate (PEM) for the TLS listeners")
	f.String("tls-key-file", "", "server private key (PEM) for the TLS listeners")
	f.String("tls-trust-certs-file", "", "CA certificates (PEM) client certificates are verified against; turns on TLS authentication")
	f.Bool("tls-require-client-cert", false, "refuse TLS clients without a valid client certificate")
	f.Bool("refuse-plaintext-credentials", false, "refuse tokens and other credentials on the plaintext listeners --broker-addr and --http-addr (needs a certificate, --broker-tls-addr and --https-addr); clients without credentials are still served there")
	f.String("grpc-addr", ":8090", "listen address of the access control plane (gRPC); runs when authentication is on")
	f.Bool("access-require-tls", false, "take credentials on the access control plane over TLS only: its JSON mapping is refused on the plain HTTP port (default: on when --tls-cert-file is set; on without a certificate, startup fails)")
	f.Float64("access-audit-rate", access.DefaultAuditRate, "refusal audit records written per second per caller address, after the burst")
	f.Int("access-audit-burst", access.DefaultAuditBurst, "refusal audit records written at once per caller address before the rate applies")
	f.String("access-signing-keys", "", "comma-separated private key files the control plane signs tokens with; the first signs, all verify (default: a generated key in the data dir)")
	f.Duration("access-token-ttl", time.Hour, "lifetime of tokens issued to workloads")
	f.Duration("access-login-ttl", time.Hour, "lifetime of tokens issued at login")
	f.String("oidc-issuers", "", "comma-separated OIDC issuers trusted for workload identities; the first is the login issuer")
	f.String("oidc-client-id", "", "OIDC client id of mb access login (the audience of people's ID tokens)")
	f.String("oidc-audience", "messagebus", "audience workload OIDC tokens must carry")
	f.String("oidc-groups-claim", "groups", "ID token claim listing a person's groups")
	f.Duration("oidc-clock-skew", time.Minute, "leeway on the expiry of identity tokens")
	f.Bool("aws-identity", false, "accept AWS IAM identities (signed sts:GetCallerIdentity)")
	f.String("aws-sts-endpoint", "https://sts.amazonaws.com/", "STS endpoint signed requests are verified with")
	f.String("aws-region", "us-east-1", "region of the STS endpoint")
	f.String("aws-audience", "messagebus", "value of the signed X-MessageBus-Audience header")
	f.String("vault-addr", "", "Vault address; turns on delivery of tokens to Vault KV v2")
	f.String("vault-token-file", "", "file holding the Vault token (env MB_VAULT_TOKEN also works)")
	f.String("vault-mount", "secret", "Vault KV v2 mount")
	f.String("vault-prefix", "messagebus", "path prefix of delivered tokens")
	f.Duration("vault-refresh-interval", time.Minute, "how often delivered tokens are checked")
	f.Bool("connectors-enabled", true, "run the connectors worker (/admin/v3/sources, /admin/v3/sinks, mb connectors); it uses --function-auth-token")
	f.Bool("functions-worker-enabled", true, "run the function worker (/admin/v3/functions, mb functions)")
	f.String("function-max-memory", "128MiB", "memory cap of each function instance (WebAssembly linear memory): bytes with an optional unit (64MiB)")
	f.Int("function-batch-size", 100, "most messages a function instance passes to one call of a WebAssembly function (what its consumer has already received; 1 calls per message)")
	f.Bool("function-inprocess", true, "let WebAssembly function instances whose input topics this broker serves consume and publish in process (through the broker's dispatcher and publish path) instead of through a Pulsar client over loopback")
	f.Duration("function-call-timeout", 5*time.Second, "time budget of one function call; past it the call is interrupted, the message negatively acknowledged and the instance restarted")
	f.Bool("function-process-enabled", true, "allow process functions (runtime PROCESS: executables the worker starts and supervises)")
	f.String("function-process-auth-token", "", "token given to process functions (MB_AUTH_TOKEN and their client config) when authentication is on; without it they are refused on such a node; env MB_FUNCTION_PROCESS_AUTH_TOKEN")
	f.String("function-auth-token", "", "token of the function worker's role when authentication is on (it consumes inputs and produces outputs; a superuser role, typically); env MB_FUNCTION_AUTH_TOKEN")
	f.Bool("enable-pprof", false, "serve Go's CPU, heap and allocation profiles at /debug/pprof/ on the HTTP port")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.String("log-format", "text", "log format: text or json")
	return cmd
}

// loadConfig binds flags, MB_* environment variables and the config file to v.
func loadConfig(cmd *cobra.Command, v *viper.Viper) error {
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return err
	}
	v.SetEnvPrefix("MB")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config %s: %w", path, err)
		}
	}
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q (text or json)", format)
}

// stringList reads a list setting: comma-separated in a flag or variable,
// or a list in a config file.
func stringList(v *viper.Viper, key string) []string {
	if list, ok := v.Get(key).([]any); ok {
		var out []string
		for _, x := range list {
			out = append(out, strings.TrimSpace(fmt.Sprint(x)))
		}
		return out
	}
	return splitList(v.GetString(key))
}

// setMemoryLimit bounds the heap softly: the caches are the bulk of it, and
// without a limit the garbage collector lets the heap grow to twice the live
// data: RSS was 2.3 x the cache budget with 16 busy topics, and is about the
// limit with it (at some 7% of throughput at the limit).
func setMemoryLimit(log *slog.Logger, limit, cacheTotal int64) {
	if os.Getenv("GOMEMLIMIT") != "" || limit < 0 {
		return
	}
	if limit == 0 {
		if cacheTotal <= 0 {
			cacheTotal = 512 << 20
		}
		limit = cacheTotal + cacheTotal/2 + 256<<20
	}
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}

// accessOptionsFrom reads the control plane's settings.
func accessOptionsFrom(v *viper.Viper) (server.Access, error) {
	vaultToken := v.GetString("vault-token") // env MB_VAULT_TOKEN only: never a flag
	if f := v.GetString("vault-token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return server.Access{}, fmt.Errorf("read --vault-token-file: %w", err)
		}
		vaultToken = strings.TrimSpace(string(b))
	}
	var requireTLS *bool
	if v.IsSet("access-require-tls") { // flag, env or file; else the default depends on the certificate
		b := v.GetBool("access-require-tls")
		requireTLS = &b
	}
	return server.Access{
		GRPCAddr:             v.GetString("grpc-addr"),
		RequireTLS:           requireTLS,
		AuditRate:            v.GetFloat64("access-audit-rate"),
		AuditBurst:           v.GetInt("access-audit-burst"),
		SigningKeys:          stringList(v, "access-signing-keys"),
		TokenTTL:             v.GetDuration("access-token-ttl"),
		LoginTTL:             v.GetDuration("access-login-ttl"),
		OIDCIssuers:          stringList(v, "oidc-issuers"),
		OIDCLoginClientID:    v.GetString("oidc-client-id"),
		OIDCWorkloadAudience: v.GetString("oidc-audience"),
		OIDCGroupsClaim:      v.GetString("oidc-groups-claim"),
		OIDCClockSkew:        v.GetDuration("oidc-clock-skew"),
		AWSEnabled:           v.GetBool("aws-identity"),
		AWSSTSEndpoint:       v.GetString("aws-sts-endpoint"),
		AWSRegion:            v.GetString("aws-region"),
		AWSAudience:          v.GetString("aws-audience"),
		VaultAddr:            v.GetString("vault-addr"),
		VaultToken:           vaultToken,
		VaultMount:           v.GetString("vault-mount"),
		VaultPrefix:          v.GetString("vault-prefix"),
		VaultRefreshInterval: v.GetDuration("vault-refresh-interval"),
	}, nil
}

// metadataOptionsFrom reads the metadata store's settings.
func metadataOptionsFrom(v *viper.Viper) (server.Metadata, error) {
	password := v.GetString("metadata-password") // env MB_METADATA_PASSWORD only: never a flag
	if f := v.GetString("metadata-password-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return server.Metadata{}, fmt.Errorf("read --metadata-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	m := server.Metadata{
		Store:       v.GetString("metadata-store"),
		Prefix:      v.GetString("metadata-prefix"),
		Timeout:     v.GetDuration("metadata-timeout"),
		Username:    v.GetString("metadata-user"),
		Password:    password,
		TLSEnabled:  v.GetBool("metadata-tls"),
		TLSCAFile:   v.GetString("metadata-tls-ca-file"),
		TLSCertFile: v.GetString("metadata-tls-cert-file"),
		TLSKeyFile:  v.GetString("metadata-tls-key-file"),
	}
	if m.Timeout <= 0 {
		return m, fmt.Errorf("--metadata-timeout must be positive")
	}
	if m.IsEmbedded() && (m.Username != "" || m.TLSEnabled || m.TLSCAFile != "" || m.TLSCertFile != "") {
		return m, fmt.Errorf("etcd user and TLS settings need --metadata-store etcd://host:port")
	}
	return m, nil
}

// runServer runs mb standalone, or mb broker when cluster is set.
func runServer(v *viper.Viper, cluster *server.Cluster) error {
	log, err := newLogger(v.GetString("log-level"), v.GetString("log-format"))
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if v.GetInt("max-message-size") <= 0 {
		return fmt.Errorf("--max-message-size must be positive")
	}
	access, err := accessOptionsFrom(v)
	if err != nil {
		return err
	}
	offload, err := offloadOptionsFrom(v)
	if err != nil {
		return err
	}
	fnOpts, err := functionOptionsFrom(v)
	if err != nil {
		return err
	}
	metadata, err := metadataOptionsFrom(v)
	if err != nil {
		return err
	}
	checkpointInterval := v.GetDuration("checkpoint-interval")
	if checkpointInterval <= 0 {
		checkpointInterval = -1 // off
	}
	if v.GetInt("checkpoint-retain") < 1 {
		return fmt.Errorf("--checkpoint-retain must be at least 1")
	}
	if n := v.GetInt("background-nice"); n < 0 || n > 19 {
		return fmt.Errorf("--background-nice %d: want 0 (off) to 19", n)
	}
	setMemoryLimit(log, v.GetInt64("memory-limit"), v.GetInt64("cache-total-size"))
	if os.Getenv("GOGC") == "" && v.GetInt64("memory-limit") >= 0 {
		// With the heap limit in place, collect half as often: fewer GC
		// cycles on the publish path (publish p99 at half of max rate went
		// from 8-11 ms to 6-7 ms on 2 cores).
		debug.SetGCPercent(200)
	}
	s, err := server.New(server.Options{
		DataDir:                                  v.GetString("data-dir"),
		BrokerAddr:                               v.GetString("broker-addr"),
		HTTPAddr:                                 v.GetString("http-addr"),
		AdvertisedAddress:                        v.GetString("advertised-address"),
		AdvertisedListeners:                      v.GetString("advertised-listeners"),
		ClusterName:                              v.GetString("cluster-name"),
		MaxMessageSize:                           v.GetInt("max-message-size"),
		JournalSegmentSize:                       v.GetInt64("journal-segment-size"),
		NoJournalPreallocation:                   !v.GetBool("journal-preallocate"),
		MinFreeDisk:                              v.GetString("min-free-disk"),
		CacheBytes:                               v.GetInt64("cache-size"),
		CacheTotalBytes:                          v.GetInt64("cache-total-size"),
		DefaultRetentionMinutes:                  v.GetInt("default-retention-time-minutes"),
		DefaultRetentionSizeMB:                   v.GetInt64("default-retention-size-mb"),
		DeduplicationEnabled:                     v.GetBool("deduplication-enabled"),
		KeySharedRangeSplit:                      !v.GetBool("key-shared-consistent-hashing"),
		DisableReplicatedSubscriptions:           !v.GetBool("enable-replicated-subscriptions"),
		ReplicatedSubscriptionsSnapshotFrequency: time.Duration(v.GetInt("replicated-subscriptions-snapshot-frequency-millis")) * time.Millisecond,
		DisableReplicatedSubscriptionsAdminSync:  !v.GetBool("replicated-subscriptions-admin-sync"),
		MaxUnackedMessagesPerConsumer:            v.GetInt("max-unacked-messages-per-consumer"),
		MaxUnackedMessagesPerSubscription:        v.GetInt("max-unacked-messages-per-subscription"),
		MaxSubscriptionsPerTopic:                 v.GetInt("max-subscriptions-per-topic"),
		MaxTopicsPerNamespace:                    v.GetInt("max-topics-per-namespace"),
		SubscriptionExpirationTimeMinutes:        v.GetInt("subscription-expiration-time-minutes"),
		NoAutoSubscriptionCreation:               !v.GetBool("allow-auto-subscription-creation"),
		PolicyCheckInterval:                      v.GetDuration("policy-check-interval"),
		OperationTimeout:                         v.GetDuration("operation-timeout"),
		CompactionCheckInterval:                  v.GetDuration("compaction-check-interval"),
		CompactionMaxRate:                        v.GetInt64("compaction-max-rate"),
		NoBackgroundYield:                        !v.GetBool("background-yield"),
		CheckpointInterval:                       checkpointInterval,
		CheckpointRetain:                         v.GetInt("checkpoint-retain"),
		HideTopicLevelMetrics:                    !v.GetBool("expose-topic-level-metrics"),
		EnablePprof:                              v.GetBool("enable-pprof"),
		Logger:                                   log,
		Metadata:                                 metadata,
		BackgroundIdleIO:                         v.GetBool("background-idle-io"),
		BackgroundNice:                           v.GetInt("background-nice"),
		BackgroundSchedIdle:                      v.GetBool("background-sched-idle"),
		Security: server.Security{
			AuthTokenSecretKey:         v.GetString("auth-token-secret-key"),
			AuthTokenPublicKey:         v.GetString("auth-token-public-key"),
			AuthTokenRoleClaim:         v.GetString("auth-token-role-claim"),
			BasicAuthConf:              v.GetString("basic-auth-conf"),
			SuperuserRoles:             stringList(v, "superuser-roles"),
			ReplicatorRoles:            stringList(v, "replicator-roles"),
			AnonymousRole:              v.GetString("anonymous-role"),
			AuthRefreshTimeout:         v.GetDuration("auth-refresh-timeout"),
			BrokerTLSAddr:              v.GetString("broker-tls-addr"),
			HTTPSAddr:                  v.GetString("https-addr"),
			TLSCertFile:                v.GetString("tls-cert-file"),
			TLSKeyFile:                 v.GetString("tls-key-file"),
			TLSTrustCertsFile:          v.GetString("tls-trust-certs-file"),
			TLSRequireClientCert:       v.GetBool("tls-require-client-cert"),
			RefusePlaintextCredentials: v.GetBool("refuse-plaintext-credentials"),
		},
		Access:     access,
		Offload:    offload,
		Functions:  fnOpts,
		Connectors: server.Connectors{Disabled: !v.GetBool("connectors-enabled")},
		Cluster:    cluster,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s.Start()
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-s.Err():
		log.Error("serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return serveErr
}

// functionOptionsFrom reads the function worker's flags.
func functionOptionsFrom(v *viper.Viper) (server.Functions, error) {
	mem, err := parseSize(v.GetString("function-max-memory"))
	if err != nil {
		return server.Functions{}, fmt.Errorf("--function-max-memory: %w", err)
	}
	if mem < 64<<10 {
		return server.Functions{}, fmt.Errorf("--function-max-memory %s: at least 64KiB (one WebAssembly page)", v.GetString("function-max-memory"))
	}
	if v.GetDuration("function-call-timeout") <= 0 {
		return server.Functions{}, fmt.Errorf("--function-call-timeout must be positive")
	}
	if n := v.GetInt("function-batch-size"); n < 1 || n > 10000 {
		return server.Functions{}, fmt.Errorf("--function-batch-size %d: want 1 to 10000", n)
	}
	return server.Functions{
		BatchSize:         v.GetInt("function-batch-size"),
		InProcessDisabled: !v.GetBool("function-inprocess"),
		Disabled:          !v.GetBool("functions-worker-enabled"),
		MaxMemory:         mem,
		CallTimeout:       v.GetDuration("function-call-timeout"),
		AuthToken:         v.GetString("function-auth-token"),

		ProcessDisabled:  !v.GetBool("function-process-enabled"),
		ProcessAuthToken: v.GetString("function-process-auth-token"),
	}, nil
}
