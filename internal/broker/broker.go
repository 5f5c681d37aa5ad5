package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/loglimit"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/internal/schema"
)

// Config holds the broker's settings.
type Config struct {
	ClusterName string
	// ProducerNameGeneratorID is this broker start's own id in the names it
	// gives producers that bring none, {cluster}-{id}-{seq}. The server
	// takes a new one from the metadata store on each start
	// (meta.Resources.NextProducerNameGeneratorID), so names are never
	// reused across restarts: a reused name would collide with a client
	// that reconnects under its old one (ProducerBusy) and would inherit
	// that producer's deduplication state.
	ProducerNameGeneratorID int64
	// AdvertisedURL is the pulsar:// URL given in lookup answers.
	AdvertisedURL string
	// AdvertisedTLSURL is the pulsar+ssl:// URL given in lookup answers
	// when the broker also serves TLS.
	AdvertisedTLSURL string
	// Listeners are the named advertised listeners (--advertised-listeners):
	// a LOOKUP naming one is answered with its URLs.
	Listeners map[string]Listener
	// MaxMessageSize bounds a message's headers and payload; CONNECTED reports it.
	MaxMessageSize int
	// Defaults of the limit policies for namespaces and topics that set
	// none (0: no limit): unacked messages per Shared/Key_Shared consumer
	// and subscription (unacked.go), subscriptions per topic, topics per
	// namespace, and the minutes after which a durable subscription
	// without consumers is deleted.
	MaxUnackedMessagesPerConsumer     int
	MaxUnackedMessagesPerSubscription int
	MaxSubscriptionsPerTopic          int
	MaxTopicsPerNamespace             int
	SubscriptionExpirationTimeMinutes int
	// NoAutoSubscriptionCreation refuses a SUBSCRIBE to a subscription that
	// does not exist, where no policy allows it (Pulsar's
	// allowAutoSubscriptionCreation=false).
	NoAutoSubscriptionCreation bool
	// KeepAliveInterval is how often idle connections are pinged; a connection
	// silent for two intervals is dropped.
	KeepAliveInterval time.Duration
	// CursorSaveInterval is how often changed cursors are handed to the ledger.
	CursorSaveInterval time.Duration
	// DispatchBatchEntries bounds the entries read per dispatch round.
	DispatchBatchEntries int
	// DeduplicationEnabled is the default for namespaces without a
	// deduplication policy.
	DeduplicationEnabled bool
	// KeySharedRangeSplit makes Key_Shared AUTO_SPLIT subscriptions split
	// hash ranges in halves instead of using the consistent-hash ring
	// (Pulsar's subscriptionKeySharedUseConsistentHashing=false).
	KeySharedRangeSplit bool
	// DisableReplicatedSubscriptions turns the replicated subscription
	// markers off (Pulsar's enableReplicatedSubscriptions=false):
	// no snapshots are taken and replicated markers are stored unprocessed.
	DisableReplicatedSubscriptions bool
	// ReplicatedSubscriptionsSnapshotFrequency is how often a topic with a
	// replicated subscription takes a snapshot (Pulsar's
	// replicatedSubscriptionsSnapshotFrequencyMillis); default 1 s.
	ReplicatedSubscriptionsSnapshotFrequency time.Duration
	// DisableReplicatedSubscriptionsAdminSync stops the watermark posts to
	// the remote's admin API (replicated_subs.go), leaving the markers alone.
	DisableReplicatedSubscriptionsAdminSync bool
	// ReplicationSweepInterval is how often, in cluster mode, a broker
	// looks for replicated topics without an owner to take and load
	// (replication_cluster.go); default 5 s.
	ReplicationSweepInterval time.Duration
	// PolicyCheckInterval is how often message TTL, backlog quotas and
	// retention are enforced.
	PolicyCheckInterval time.Duration
	// DefaultRetentionMinutes and DefaultRetentionSizeMB apply to namespaces
	// without a retention policy (-1: unlimited).
	DefaultRetentionMinutes int
	DefaultRetentionSizeMB  int64
	// NamespaceLevelMetrics sums the per-topic metrics per namespace
	// (Pulsar's exposeTopicLevelMetricsInPrometheus=false).
	NamespaceLevelMetrics bool
	// CompactionCheckInterval is how often topics are checked against their
	// compaction threshold (Pulsar's brokerServiceCompactionMonitorIntervalInSeconds).
	CompactionCheckInterval time.Duration
	// CompactionMaxRate bounds the bytes per second compactions read, over
	// all topics (0: no limit).
	CompactionMaxRate int64
	// CompactionNoYield: compactions do not pause while producers publish
	// (internal/pace); the default is to pause.
	CompactionNoYield bool
	// CompactionNoIdleIO: compactions read at the usual I/O priority (by
	// default at the idle class, pace.IdleIO).
	CompactionNoIdleIO bool
	// CompactionCPU is the CPU priority compactions run at
	// (pace.Background); zero: the usual priority.
	CompactionCPU pace.CPU
	// Delayed is the store of delayed-delivery indexes; nil keeps each
	// subscription's delayed entries in an in-memory heap.
	Delayed *delayed.Store
	// Auth authenticates connections and authorizes lookups, producers and
	// consumers; nil turns both off.
	Auth *auth.Service
	// AuthRefreshTimeout is how long a client has to answer AUTH_CHALLENGE
	// with fresh credentials once its own expire (default 30s).
	AuthRefreshTimeout time.Duration
	// RefusePlaintextCreds refuses CONNECT with authentication data on a
	// connection that is not TLS (handle_auth.go).
	RefusePlaintextCreds bool
	// Schemas is the schema registry; nil: one over the broker's metadata.
	Schemas *schema.Registry
	// OperationTimeout bounds each client request (lookup, partitioned
	// metadata, producer, subscribe, ...): past it the request is answered
	// with ServiceNotReady, a retriable error (default 30s, as Pulsar's
	// metadataStoreOperationTimeoutSeconds). It also bounds a topic load.
	OperationTimeout time.Duration
	// Policies is the policy source shared with authorization (auth.Config.
	// Policies); nil: the broker keeps its own cache over the metadata store.
	Policies *meta.PolicyCache
	// ReplicatorRoles may publish replicated messages (replicated_from
	// set), besides superusers: the roles other clusters' replicators
	// authenticate as.
	ReplicatorRoles []string
	// StartReplicator starts the replicator of a topic to a remote cluster
	// (replication_source.go); nil: this broker replicates nothing out.
	StartReplicator StartReplicatorFunc
	// Ownership answers lookups in cluster mode (cluster.go); nil: this
	// broker serves every topic.
	Ownership Ownership
	Logger    *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = "standalone"
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 5 << 20
	}
	if c.OperationTimeout <= 0 {
		c.OperationTimeout = 30 * time.Second
	}
	if c.AuthRefreshTimeout <= 0 {
		c.AuthRefreshTimeout = 30 * time.Second
	}
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = 30 * time.Second
	}
	if c.ReplicatedSubscriptionsSnapshotFrequency <= 0 {
		c.ReplicatedSubscriptionsSnapshotFrequency = defaultSnapshotInterval
	}
	if c.CursorSaveInterval <= 0 {
		c.CursorSaveInterval = 200 * time.Millisecond
	}
	if c.ReplicationSweepInterval <= 0 {
		c.ReplicationSweepInterval = 5 * time.Second
	}
	if c.PolicyCheckInterval <= 0 {
		c.PolicyCheckInterval = 30 * time.Second
	}
	if c.CompactionCheckInterval <= 0 {
		c.CompactionCheckInterval = time.Minute
	}
	if c.DispatchBatchEntries <= 0 {
		c.DispatchBatchEntries = 256
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Broker serves the Pulsar binary protocol.
type Broker struct {
	cfg Config
	// dyn are the settings the dynamic configuration may change
	// (dynconfig.go); dynFlags their values from the flags.
	dyn      dynamicConfig
	dynFlags map[string]string
	log      *slog.Logger
	store    ledger.Store
	meta     *meta.Resources
	metrics  *Metrics
	schemas  *schema.Registry
	// compaction reads' rate limit (compaction_throttle.go)
	compactionLimOnce sync.Once
	compactionLim     *rate.Limiter
	// activity is when producers last published: compactions yield to them
	activity pace.Activity

	// mu guards the maps below; it is never held across metadata or
	// ledger calls (see load.go for how topics load and unload).
	mu       sync.Mutex
	topics   map[string]*Topic
	loads    map[string]*topicLoad    // loads in flight, by full name
	fences   map[string]chan struct{} // topics being unloaded or deleted
	conns    map[*conn]struct{}
	lns      []net.Listener
	closing  bool
	draining chan struct{} // closed when shutdown begins

	producerSeq atomic.Int64
	connWG      sync.WaitGroup
	bgWG        sync.WaitGroup
	stopBG      chan struct{}
	loadWG      sync.WaitGroup
	// ctx lives as long as the broker: loads, enforcement rounds and
	// dispatch reads derive their contexts from it; stop ends it.
	ctx  context.Context
	stop context.CancelFunc
	// policies is the policy source (Config.Policies or the broker's own).
	policies *meta.PolicyCache
	// policiesChanged wakes the policy loop when policies change.
	policiesChanged <-chan struct{}
	// appendErrLog limits "append failed" to one line per interval: on a
	// full disk every send fails, and clients resend.
	appendErrLog *loglimit.Limiter
}

// New creates a broker over a ledger store and a metadata store.
func New(cfg Config, store ledger.Store, md *meta.Resources, metrics *Metrics) *Broker {
	cfg.setDefaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    store,
		meta:     md,
		metrics:  metrics,
		schemas:  cfg.Schemas,
		topics:   map[string]*Topic{},
		loads:    map[string]*topicLoad{},
		fences:   map[string]chan struct{}{},
		conns:    map[*conn]struct{}{},
		draining: make(chan struct{}),
		stopBG:   make(chan struct{}),
	}
	if b.schemas == nil {
		b.schemas = schema.NewRegistry(md, nil)
	}
	b.appendErrLog = loglimit.New(appendErrLogInterval)
	b.initDynamic()
	// The root of every context the broker makes for its own work.
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.policies = cfg.Policies
	if b.policies == nil {
		b.policies = meta.NewPolicyCache(md, cfg.OperationTimeout)
		b.bgWG.Add(1)
		go func() {
			defer b.bgWG.Done()
			b.policies.Run(b.ctx)
		}()
	}
	b.policiesChanged = b.policies.Subscribe()
	b.bgWG.Add(7)
	go b.resumeReplication()
	go b.everyTopic(replicatedSubscriptionInterval, func(t *Topic) {
		if !b.cfg.DisableReplicatedSubscriptionsAdminSync {
			t.replicateSubscriptions()
		}
	})
	go b.everyTopic(b.cfg.ReplicatedSubscriptionsSnapshotFrequency, (*Topic).snapshotTick)
	// Changed cursors go to the ledger, which persists them.
	go b.everyTopic(b.cfg.CursorSaveInterval, (*Topic).saveCursors)
	go b.everyTopic(b.cfg.CompactionCheckInterval, func(t *Topic) { t.checkCompactionThreshold(b.ctx) })
	go b.everyTopic(b.cfg.PolicyCheckInterval, func(t *Topic) { t.checkOffloadPolicies(b.ctx) })
	go b.policyLoop()
	return b
}

// Serve accepts connections on ln until Shutdown. It returns nil after Shutdown.
func (b *Broker) Serve(ln net.Listener) error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return errors.New("broker: shut down")
	}
	b.lns = append(b.lns, ln)
	b.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-b.draining:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		c := newConn(b, nc)
		b.mu.Lock()
		if b.closing {
			b.mu.Unlock()
			nc.Close()
			continue
		}
		b.conns[c] = struct{}{}
		b.connWG.Add(1)
		b.mu.Unlock()
		b.metrics.connections.Inc()
		go c.run()
	}
}

func (b *Broker) removeConn(c *conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	b.metrics.connections.Dec()
	b.connWG.Done()
}

// Shutdown stops accepting, stops reading from clients, lets every write
// already handed to the ledger complete and reach its client, saves cursors,
// and closes the topics. The ledger and metadata stores stay open: their
// owner closes them after Shutdown.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	close(b.draining)
	for _, ln := range b.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()

	// Stop reading; each connection then waits for its in-flight sends.
	for _, c := range conns {
		c.stopReading()
	}
	done := make(chan struct{})
	go func() { b.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.close()
		}
	}
	close(b.stopBG)
	b.stop()
	b.bgWG.Wait()
	// Loads in flight end (their contexts are cancelled) and close what
	// they opened: the broker is closing.
	b.loadWG.Wait()

	b.mu.Lock()
	topics := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	b.topics = map[string]*Topic{}
	b.mu.Unlock()
	for _, t := range topics {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// everyTopic runs fn on every loaded topic each interval until the broker
// stops; it is one of the background goroutines bgWG counts.
func (b *Broker) everyTopic(interval time.Duration, fn func(*Topic)) {
	defer b.bgWG.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-b.stopBG:
			return
		case <-tick.C:
			for _, t := range b.topicList() {
				fn(t)
			}
		}
	}
}

func (b *Broker) topicList() []*Topic {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	return out
}

// Topics returns the loaded topics' names.
func (b *Broker) Topics() []string {
	ts := b.topicList()
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.fullName
	}
	return out
}

var errShuttingDown = errors.New("broker is shutting down")

// nextProducerName names a producer that brought no name, as Pulsar's
// DistributedIdGenerator does: {cluster}-{generator id}-{seq}, seq from 0.
func (b *Broker) nextProducerName() string {
	return b.cfg.ClusterName + "-" + strconv.FormatInt(b.cfg.ProducerNameGeneratorID, 10) + "-" +
		strconv.FormatInt(b.producerSeq.Add(1)-1, 10)
}
