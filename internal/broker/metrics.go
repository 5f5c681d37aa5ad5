package broker

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the bounds of the publish and fsync latency histograms:
// 25 µs to about 4.6 s in steps of √2, fine enough to tell a 0.2 ms fsync
// from a 0.3 ms one.
var LatencyBuckets = prometheus.ExponentialBuckets(25e-6, math.Sqrt2, 36)

// Metrics are the broker-wide Prometheus collectors (per-topic ones come
// from Collector). Names follow Pulsar's where Pulsar has one.
type Metrics struct {
	connections    prometheus.Gauge
	topics         prometheus.Gauge
	producers      prometheus.Gauge
	consumers      prometheus.Gauge
	msgIn          prometheus.Counter
	bytesIn        prometheus.Counter
	msgOut         prometheus.Counter
	bytesOut       prometheus.Counter
	msgDropped     prometheus.Counter
	checksumErrors prometheus.Counter
	// replicationErrors counts failed replication attempts (dial,
	// handshake, refused or unanswered sends) per remote cluster.
	replicationErrors *prometheus.CounterVec
	lostSkipped       prometheus.Counter
	appendErrors      prometheus.Counter
	publishLatency    prometheus.Histogram
	authSuccesses     *prometheus.CounterVec
	authFailures      *prometheus.CounterVec
	// Topic loads and metadata failures (load.go, request.go).
	loadSeconds      *prometheus.HistogramVec
	loadsInflight    prometheus.Gauge
	metadataErrors   *prometheus.CounterVec
	requestTimeouts  *prometheus.CounterVec
	enforcementSkips prometheus.Counter
	compaction       *compactionMetrics
	limits           *limitsMetrics
	markers          *markerMetrics
}

// NewMetrics creates the collectors and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "pulsar_active_connections", Help: "Open client connections."}),
		topics:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "pulsar_broker_topics_count", Help: "Loaded topics."}),
		producers:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "pulsar_broker_producers_count", Help: "Connected producers."}),
		consumers:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "pulsar_broker_consumers_count", Help: "Connected consumers."}),
		msgIn:          prometheus.NewCounter(prometheus.CounterOpts{Name: "pulsar_broker_in_messages_total", Help: "Messages published."}),
		bytesIn:        prometheus.NewCounter(prometheus.CounterOpts{Name: "pulsar_broker_in_bytes_total", Help: "Bytes published (headers and payload)."}),
		msgOut:         prometheus.NewCounter(prometheus.CounterOpts{Name: "pulsar_broker_out_messages_total", Help: "Messages dispatched to consumers."}),
		bytesOut:       prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_out_bytes_total", Help: "Bytes written to client connections."}),
		msgDropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_nonpersistent_dropped_messages_total", Help: "Non-persistent messages no consumer could take."}),
		checksumErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_checksum_errors_total", Help: "Sends refused for a bad checksum."}),
		replicationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_replication_errors_total",
			Help: "Failed geo-replication attempts (connect, authentication, refused or unanswered sends), per remote cluster."}, []string{"remote_cluster"}),
		lostSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_subscription_lost_entries_skipped_total",
			Help: "Entries lost to damaged storage that subscriptions acknowledged to move past them."}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_persistence_errors_total",
			Help: "Sends answered with PersistenceError: the ledger did not store them (disk full, journal failure)."}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mb_publish_latency_seconds",
			Help:    "Time from reading a SEND to queueing its receipt, fsync included (persistent topics).",
			Buckets: LatencyBuckets}),
		authSuccesses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_authentication_success_total",
			Help: "Successful authentications on the binary protocol (CONNECT and refreshes)."}, []string{"auth_method"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pulsar_authentication_failures_total",
			Help: "Refused authentications on the binary protocol."}, []string{"auth_method"}),
		loadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mb_topic_load_seconds",
			Help:    "Time to load a topic (namespace check, ledger open, deduplication replay), by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 20)}, []string{"result"}),
		loadsInflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mb_topic_loads_inflight",
			Help: "Topic loads in progress."}),
		metadataErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_metadata_errors_total",
			Help: "Metadata reads that failed on the broker's request and enforcement paths, by what was read."}, []string{"op"}),
		requestTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mb_request_timeouts_total",
			Help: "Client requests answered with ServiceNotReady because the operation timeout passed, by command."}, []string{"command"}),
		enforcementSkips: prometheus.NewCounter(prometheus.CounterOpts{Name: "mb_policy_enforcement_skipped_total",
			Help: "Topic enforcement rounds (TTL, backlog quota, retention) skipped because the topic's policies could not be read."}),
	}
	m.compaction = newCompactionMetrics(reg)
	m.limits = newLimitsMetrics(reg)
	m.markers = newMarkerMetrics(reg)
	if reg != nil {
		reg.MustRegister(m.connections, m.topics, m.producers, m.consumers, m.msgIn, m.bytesIn,
			m.msgOut, m.bytesOut, m.msgDropped, m.checksumErrors, m.replicationErrors, m.lostSkipped, m.appendErrors, m.publishLatency,
			m.authSuccesses, m.authFailures, m.loadSeconds, m.loadsInflight, m.metadataErrors, m.requestTimeouts,
			m.enforcementSkips)
	}
	return m
}
