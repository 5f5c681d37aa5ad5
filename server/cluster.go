package server

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/messagebus/messagebus/internal/admin"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/cluster"
	ledgercluster "github.com/messagebus/messagebus/internal/ledger/cluster"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/objstore"
)

// Cluster turns on cluster mode (mb broker): entry data in WAL objects in
// an S3 bucket, the index, ownership and cursors in etcd (Metadata must be
// etcd), no local state but a cache. Nil: standalone.
type Cluster struct {
	// BrokerID names this broker in etcd and in WAL object keys (default:
	// the advertised host:port of the binary protocol).
	BrokerID string
	// Storage is "s3" (the only one).
	Storage   string
	Bucket    string
	Region    string
	Endpoint  string
	PathStyle bool
	// Prefix of object keys (default "mb").
	Prefix string
	// WALMaxDelay and WALMaxBytes cut group commits (defaults 5 ms, 4 MiB).
	WALMaxDelay time.Duration
	WALMaxBytes int
	// WALMaxInflight bounds the WAL objects written at once (default 4).
	WALMaxInflight int
	// RewriteEvery and GCEvery: how often WAL data is rewritten into
	// segment objects and unreferenced WAL objects deleted (defaults 30 s
	// and 1 min; negative: never).
	RewriteEvery, GCEvery time.Duration
	// OrphanEvery: how often objects no etcd record leads to are swept
	// (0: the store's default, negative: never).
	OrphanEvery time.Duration
	// LeaseTTL is the broker's etcd lease: its bundles move this long after
	// it dies (default 10 s).
	LeaseTTL time.Duration
	// Bundles per namespace (default 4).
	Bundles int
	// CacheBytes is the block cache (default 64 MiB).
	CacheBytes int64
	// Objects replaces the S3 store (tests).
	Objects objstore.Store
}

// openCluster joins the cluster (registry, ownership) and opens the
// cluster ledger store. It needs the listeners (advertised URLs).
func (s *Server) openCluster(reg prometheus.Registerer) error {
	c := s.opts.Cluster
	if s.etcd == nil {
		return fmt.Errorf("cluster mode needs --metadata-store etcd://host:port[,...]")
	}
	objects := c.Objects
	if objects == nil {
		if st := strings.ToLower(c.Storage); st != "s3" && st != "" {
			return fmt.Errorf("--storage %q is not supported in cluster mode (supported: s3)", c.Storage)
		}
		if c.Bucket == "" {
			return fmt.Errorf("cluster mode needs --bucket")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s3, err := objstore.NewS3(ctx, objstore.S3Options{Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint,
			PathStyle: c.PathStyle, Metrics: objstore.NewMetrics(reg)})
		if err != nil {
			return err
		}
		objects = s3
	}
	host := s.opts.AdvertisedAddress
	pulsarURL := s.advertisedBrokerURL()
	httpURL := "http://" + net.JoinHostPort(host, port(s.httpL))
	id := c.BrokerID
	if id == "" {
		id = net.JoinHostPort(host, port(s.brokerL))
	}
	prefix := s.etcd.Prefix() + "/cluster/"
	log := s.log.With("component", "cluster")
	m, err := cluster.New(context.Background(), cluster.Options{
		Client: s.etcd.Client(), Prefix: prefix, ID: id, PulsarURL: pulsarURL, HTTPURL: httpURL,
		PulsarTLSURL: s.advertisedBrokerTLSURL(), HTTPSURL: s.advertisedHTTPSURL(),
		Listeners: clusterListeners(s.listeners), LeaseTTL: c.LeaseTTL, Bundles: c.Bundles, Logger: log,
		Abandon: func(b cluster.Bundle) {
			if st, ok := s.store.(*ledgercluster.Store); ok {
				st.Abandon(func(name string) bool {
					t, err := naming.ParseTopic(ledgerTopic(name))
					return err == nil && t.Namespace.String() == b.Namespace && cluster.BundleOf(b.Namespace, t.String(), c.Bundles) == b
				})
			}
		},
		Release: func(b cluster.Bundle) {
			if s.broker == nil {
				return
			}
			s.broker.UnloadMatching(func(topic string) bool {
				t, err := naming.ParseTopic(topic)
				return err == nil && t.Namespace.String() == b.Namespace && cluster.BundleOf(b.Namespace, topic, c.Bundles) == b
			})
		},
		Load: func() cluster.Load {
			if s.broker == nil {
				return cluster.Load{}
			}
			return cluster.Load{Topics: s.broker.LoadedTopics()}
		},
	})
	if err != nil {
		return err
	}
	s.owner = m
	st, err := ledgercluster.New(context.Background(), ledgercluster.Options{
		Client: s.etcd.Client(), Prefix: prefix, Objects: objects, ObjectPrefix: c.Prefix, Broker: id,
		Fence: func(_ context.Context, topic string) (ledgercluster.Fence, error) {
			topic = ledgerTopic(topic)
			t, err := naming.ParseTopic(topic)
			if err != nil {
				return ledgercluster.Fence{}, err
			}
			return m.Fence(t.Namespace.String(), topic)
		},
		WALMaxDelay: c.WALMaxDelay, WALMaxBytes: c.WALMaxBytes, CacheBytes: c.CacheBytes,
		WALMaxInflight: c.WALMaxInflight, RewriteInterval: c.RewriteEvery, GCInterval: c.GCEvery,
		OrphanInterval: c.OrphanEvery,
		CallTimeout:    s.opts.OperationTimeout, Metrics: ledgercluster.NewMetrics(reg),
		Logger: s.log.With("component", "ledger"),
	})
	if err != nil {
		return err
	}
	s.store = st
	log.Info("joined the cluster", "broker", id, "pulsar", pulsarURL, "http", httpURL, "bucket", c.Bucket)
	return nil
}

// ownership adapts the manager to the broker's Ownership.
type ownership struct{ m *cluster.Manager }

func (o ownership) Lookup(ctx context.Context, ns, topic string, authoritative bool) (broker.OwnerAnswer, error) {
	a, err := o.m.Lookup(ctx, ns, topic, authoritative)
	var ls map[string]broker.Listener
	for name, l := range a.Broker.Listeners {
		if ls == nil {
			ls = map[string]broker.Listener{}
		}
		ls[name] = broker.Listener(l)
	}
	return broker.OwnerAnswer{Self: a.Self, PulsarURL: a.Broker.PulsarURL, PulsarTLSURL: a.Broker.PulsarTLSURL,
		HTTPURL: a.Broker.HTTPURL, Listeners: ls, Assign: a.Assign}, err
}

func (o ownership) Owns(ns, topic string) bool {
	_, err := o.m.Fence(ns, topic)
	return err == nil
}

// adminCluster adapts the manager to the admin API.
type adminCluster struct{ m *cluster.Manager }

func (a adminCluster) Brokers(ctx context.Context) ([]string, error) {
	bs, err := a.m.Brokers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		if u, err := url.Parse(b.HTTPURL); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out, nil
}

func (a adminCluster) Boundaries() []string { return cluster.Boundaries(a.m.BundleCount()) }

func (a adminCluster) TopicOwner(ctx context.Context, ns, topic string, authoritative bool) (bool, admin.OwnerURLs, bool, error) {
	ans, err := a.m.Lookup(ctx, ns, topic, authoritative)
	return ans.Self, ownerURLs(ans.Broker), ans.Assign, err
}

func ownerURLs(b cluster.BrokerInfo) admin.OwnerURLs {
	o := admin.OwnerURLs{HTTP: b.HTTPURL, HTTPS: b.HTTPSURL, Pulsar: b.PulsarURL, PulsarTLS: b.PulsarTLSURL}
	for name, l := range b.Listeners {
		if o.Listeners == nil {
			o.Listeners = map[string]broker.Listener{}
		}
		o.Listeners[name] = broker.Listener{PulsarURL: l.PulsarURL, PulsarTLSURL: l.PulsarTLSURL}
	}
	return o
}

func (a adminCluster) UnloadBundle(ctx context.Context, ns, name string) (admin.OwnerURLs, error) {
	b, err := cluster.ParseBundle(ns, name, a.m.BundleCount())
	if err != nil {
		return admin.OwnerURLs{}, err
	}
	owner, ok, err := a.m.OwnerOf(ctx, b)
	if err != nil || !ok {
		return admin.OwnerURLs{}, err
	}
	if owner.ID != a.m.Self().ID {
		return ownerURLs(owner), nil
	}
	_, err = a.m.Unload(ctx, b)
	return admin.OwnerURLs{}, err
}

// advertisedHTTPSURL is the https:// URL other brokers redirect admin calls
// that came over TLS to ("" without an HTTPS listener).
func (s *Server) advertisedHTTPSURL() string {
	if s.httpsL == nil {
		return ""
	}
	return "https://" + net.JoinHostPort(s.opts.AdvertisedAddress, port(s.httpsL))
}

// ledgerTopic is the topic a ledger belongs to: a compacted ledger
// (__compacted/<topic>/<n>) is fenced with its topic.
func ledgerTopic(name string) string {
	if rest, ok := strings.CutPrefix(name, "__compacted/"); ok {
		if i := strings.LastIndex(rest, "/"); i > 0 {
			return rest[:i]
		}
	}
	return name
}

// Bundle names topic's bundle (the broker's replication sweep asks each
// bundle once).
func (o ownership) Bundle(ns, topic string) string { return o.m.BundleOf(ns, topic).String() }
