package replication

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
)

// Manager starts the replicators the broker asks for (broker.Config.
// StartReplicator = Manager.Start) and resolves remote clusters from their
// registrations in the metadata store, through a short shared cache.
type Manager struct {
	clusters ClusterReader
	log      *slog.Logger
	// OnConfig, when set, adjusts each replicator's Config before it starts
	// (tests and benchmarks tune windows and timeouts with it).
	OnConfig func(*Config)

	mu    sync.Mutex
	cache map[string]clusterCacheEntry
}

// ClusterReader reads a cluster's registration (meta.Resources does).
type ClusterReader interface {
	Cluster(ctx context.Context, name string) (meta.ClusterData, error)
}

// NewManager returns a manager reading cluster registrations from clusters.
func NewManager(clusters ClusterReader, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{clusters: clusters, log: log, cache: map[string]clusterCacheEntry{}}
}

// Start starts the replicator of src. It satisfies broker.StartReplicatorFunc.
func (m *Manager) Start(src broker.ReplicationSource) broker.Replicator {
	remote := src.RemoteCluster
	cfg := Config{
		Topic:            src.Topic,
		LocalCluster:     src.LocalCluster,
		RemoteCluster:    remote,
		LedgerID:         src.LedgerID,
		PartitionedTopic: src.PartitionedTopic,
		Partitions:       src.Partitions,
		Source:           src.Entries,
		Start:            src.Start,
		Save:             src.Save,
		Schema:           src.Schema,
		Endpoint: func(ctx context.Context) (Endpoint, error) {
			cd, err := m.cluster(ctx, remote)
			if err != nil {
				return Endpoint{}, err
			}
			return EndpointOf(remote, cd)
		},
		OnError: src.OnError,
		Logger:  m.log,
	}
	if m.OnConfig != nil {
		m.OnConfig(&cfg)
	}
	return Start(cfg)
}

// clusterCacheTTL bounds how stale a remote cluster's registration may be
// when a replicator reads it: every replicator of every topic reads it
// every few seconds, and they share one read per cluster per TTL.
const clusterCacheTTL = time.Second

type clusterCacheEntry struct {
	data meta.ClusterData
	at   time.Time
}

// cluster reads a cluster's registration, through the cache.
func (m *Manager) cluster(ctx context.Context, name string) (meta.ClusterData, error) {
	m.mu.Lock()
	e, ok := m.cache[name]
	m.mu.Unlock()
	if ok && time.Since(e.at) < clusterCacheTTL {
		return e.data, nil
	}
	cd, err := m.clusters.Cluster(ctx, name)
	if err != nil {
		return cd, err
	}
	m.mu.Lock()
	m.cache[name] = clusterCacheEntry{data: cd, at: time.Now()}
	m.mu.Unlock()
	return cd, nil
}
