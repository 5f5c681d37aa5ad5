package server

import (
	"context"
	"fmt"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/internal/replication"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/prometheus/client_golang/prometheus"
)

// bootstrap writes the cluster's metadata on first start and returns the
// broker's producer name generator id. It needs the listeners: the
// cluster's record holds their URLs.
func (s *Server) bootstrap(ctx context.Context, res *meta.Resources) (producerGenID int64, err error) {
	// Before Bootstrap: whether a cluster exists yet tells a new store from
	// one written before generator ids existed.
	producerGenID, err = res.NextProducerNameGeneratorID(ctx)
	if err != nil {
		return 0, fmt.Errorf("producer name generator: %w", err)
	}
	if err := res.Bootstrap(ctx, s.opts.ClusterName, meta.ClusterData{ServiceURL: s.advertisedWebURL(), BrokerServiceURL: s.advertisedBrokerURL()}); err != nil {
		return 0, fmt.Errorf("bootstrap metadata: %w", err)
	}
	return producerGenID, nil
}

// newBroker makes the Pulsar protocol broker on the opened stores, with
// the schema registry it shares with the admin API.
func (s *Server) newBroker(res *meta.Resources, policies *meta.PolicyCache, authService *auth.Service, producerGenID int64, reg prometheus.Registerer) *schema.Registry {
	opts := s.opts
	// One registry for the binary protocol and the admin API.
	schemas := schema.NewRegistry(res, schema.NewMetrics(reg))
	s.broker = broker.New(broker.Config{
		Schemas:                                  schemas,
		ClusterName:                              opts.ClusterName,
		ProducerNameGeneratorID:                  producerGenID,
		AdvertisedURL:                            s.advertisedBrokerURL(),
		AdvertisedTLSURL:                         s.advertisedBrokerTLSURL(),
		Listeners:                                s.listeners,
		Auth:                                     authService,
		AuthRefreshTimeout:                       opts.AuthRefreshTimeout,
		RefusePlaintextCreds:                     opts.Security.RefusePlaintextCredentials,
		MaxMessageSize:                           opts.MaxMessageSize,
		KeepAliveInterval:                        opts.KeepAliveInterval,
		PolicyCheckInterval:                      opts.PolicyCheckInterval,
		OperationTimeout:                         opts.OperationTimeout,
		Policies:                                 policies,
		CompactionCheckInterval:                  opts.CompactionCheckInterval,
		CompactionMaxRate:                        opts.CompactionMaxRate,
		CompactionNoYield:                        opts.NoBackgroundYield,
		DefaultRetentionMinutes:                  opts.DefaultRetentionMinutes,
		DefaultRetentionSizeMB:                   opts.DefaultRetentionSizeMB,
		DeduplicationEnabled:                     opts.DeduplicationEnabled,
		KeySharedRangeSplit:                      opts.KeySharedRangeSplit,
		DisableReplicatedSubscriptions:           opts.DisableReplicatedSubscriptions,
		ReplicatedSubscriptionsSnapshotFrequency: opts.ReplicatedSubscriptionsSnapshotFrequency,
		DisableReplicatedSubscriptionsAdminSync:  opts.DisableReplicatedSubscriptionsAdminSync,
		MaxUnackedMessagesPerConsumer:            opts.MaxUnackedMessagesPerConsumer,
		MaxUnackedMessagesPerSubscription:        opts.MaxUnackedMessagesPerSubscription,
		MaxSubscriptionsPerTopic:                 opts.MaxSubscriptionsPerTopic,
		MaxTopicsPerNamespace:                    opts.MaxTopicsPerNamespace,
		SubscriptionExpirationTimeMinutes:        opts.SubscriptionExpirationTimeMinutes,
		NoAutoSubscriptionCreation:               opts.NoAutoSubscriptionCreation,
		NamespaceLevelMetrics:                    opts.HideTopicLevelMetrics,
		Delayed:                                  s.delayed,
		ReplicatorRoles:                          opts.Security.ReplicatorRoles,
		CompactionNoIdleIO:                       !opts.BackgroundIdleIO,
		CompactionCPU:                            pace.CPU{Nice: opts.BackgroundNice, Idle: opts.BackgroundSchedIdle},
		// The replicators are clients of the broker, started here on its request.
		StartReplicator: replication.NewManager(res, opts.Logger.With("component", "replication")).Start,
		Logger:          opts.Logger.With("component", "broker"),
		Ownership:       s.brokerOwnership(),
	}, s.store, res, broker.NewMetrics(reg))
	reg.MustRegister(s.broker.Collector(), s.broker.ReplicationCollector())
	return schemas
}

// brokerOwnership is cluster mode's ownership, nil (not a typed nil) standalone.
func (s *Server) brokerOwnership() broker.Ownership {
	if s.owner == nil {
		return nil
	}
	return ownership{s.owner}
}
