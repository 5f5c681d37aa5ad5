package meta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
)

// Key layout. Paths mirror Pulsar's metadata layout so operators recognise them.
const (
	clustersPrefix    = "/admin/clusters/"
	policiesPrefix    = "/admin/policies/"
	partitionedPrefix = "/admin/partitioned-topics/"
)

// ErrExists is returned when creating something that already exists.
var ErrExists = errors.New("meta: already exists")

// TenantInfo is the JSON of a tenant.
type TenantInfo struct {
	AdminRoles      []string `json:"adminRoles"`
	AllowedClusters []string `json:"allowedClusters"`
}

// RetentionPolicies is how long and how much consumed data is kept.
type RetentionPolicies struct {
	RetentionTimeInMinutes int   `json:"retentionTimeInMinutes"`
	RetentionSizeInMB      int64 `json:"retentionSizeInMB"`
}

// BacklogQuota is one entry of a namespace's backlog quota map.
type BacklogQuota struct {
	Limit     int64  `json:"limit,omitempty"`     // deprecated alias of LimitSize
	LimitSize int64  `json:"limitSize,omitempty"` // bytes
	LimitTime int64  `json:"limitTime,omitempty"` // seconds
	Policy    string `json:"policy,omitempty"`    // producer_request_hold | producer_exception | consumer_backlog_eviction
}

// UnmarshalJSON accepts the limits as numbers or as strings holding numbers,
// as Pulsar (Jackson) does: its own tests send {"limit": "10240"}.
func (q *BacklogQuota) UnmarshalJSON(b []byte) error {
	var raw struct {
		Limit     json.Number `json:"limit"`
		LimitSize json.Number `json:"limitSize"`
		LimitTime json.Number `json:"limitTime"`
		Policy    string      `json:"policy"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return err
	}
	var err error
	num := func(name string, n json.Number) int64 {
		if n == "" || err != nil {
			return 0
		}
		v, perr := strconv.ParseInt(string(n), 10, 64)
		if perr != nil {
			err = fmt.Errorf("backlog quota %s: %q is not an integer", name, string(n))
		}
		return v
	}
	*q = BacklogQuota{Limit: num("limit", raw.Limit), LimitSize: num("limitSize", raw.LimitSize),
		LimitTime: num("limitTime", raw.LimitTime), Policy: raw.Policy}
	return err
}

// Backlog quota types (keys of Policies.BacklogQuotaMap) and policies.
const (
	BacklogQuotaDestinationStorage = "destination_storage"
	BacklogQuotaMessageAge         = "message_age"

	BacklogPolicyProducerRequestHold     = "producer_request_hold"
	BacklogPolicyProducerException       = "producer_exception"
	BacklogPolicyConsumerBacklogEviction = "consumer_backlog_eviction"
)

// AutoTopicCreationOverride is a namespace's auto topic creation override.
type AutoTopicCreationOverride struct {
	AllowAutoTopicCreation bool   `json:"allowAutoTopicCreation"`
	TopicType              string `json:"topicType,omitempty"` // non-partitioned | partitioned
	DefaultNumPartitions   *int   `json:"defaultNumPartitions,omitempty"`
}

// AuthPolicies are the permission grants of a namespace and its topics:
// role -> actions (produce, consume, functions, ...).
type AuthPolicies struct {
	NamespaceAuth         map[string][]string            `json:"namespace_auth"`
	DestinationAuth       map[string]map[string][]string `json:"destination_auth"`
	SubscriptionAuthRoles map[string][]string            `json:"subscription_auth_roles"`
}

// Policies are a namespace's policies, with Pulsar's JSON names.
type Policies struct {
	AuthPolicies                *AuthPolicies              `json:"auth_policies,omitempty"`
	ReplicationClusters         []string                   `json:"replication_clusters,omitempty"`
	BundlesData                 json.RawMessage            `json:"bundles,omitempty"`
	BacklogQuotaMap             map[string]BacklogQuota    `json:"backlog_quota_map,omitempty"`
	Retention                   *RetentionPolicies         `json:"retention_policies,omitempty"`
	MessageTTLInSeconds         *int                       `json:"message_ttl_in_seconds,omitempty"`
	DeduplicationEnabled        *bool                      `json:"deduplicationEnabled,omitempty"`
	AutoTopicCreationOverride   *AutoTopicCreationOverride `json:"autoTopicCreationOverride,omitempty"`
	MaxProducersPerTopic        *int                       `json:"max_producers_per_topic,omitempty"`
	MaxConsumersPerTopic        *int                       `json:"max_consumers_per_topic,omitempty"`
	MaxConsumersPerSubscription *int                       `json:"max_consumers_per_subscription,omitempty"`
	// Schema policies (see internal/schema). An unset strategy is Pulsar's
	// UNDEFINED (the broker default applies); auto update defaults to true
	// and validation to false.
	SchemaCompatibilityStrategy string `json:"schema_compatibility_strategy,omitempty"`
	IsAllowAutoUpdateSchema     *bool  `json:"is_allow_auto_update_schema,omitempty"`
	SchemaValidationEnforced    bool   `json:"schema_validation_enforced,omitempty"`
	// CompactionThreshold is the backlog in bytes beyond the last compaction
	// that triggers one (0: never).
	CompactionThreshold *int64 `json:"compaction_threshold,omitempty"`
	// Tiered storage: offload when the data not yet offloaded exceeds
	// OffloadThreshold bytes, or entries older than
	// OffloadThresholdInSeconds (-1 or unset: never; 0: as soon as possible);
	// offloaded entries stay local OffloadDeletionLagMs (unset: the broker's).
	OffloadThreshold          *int64 `json:"offload_threshold,omitempty"`
	OffloadThresholdInSeconds *int64 `json:"offload_threshold_in_seconds,omitempty"`
	OffloadDeletionLagMs      *int64 `json:"offload_deletion_lag_ms,omitempty"`
	// OffloadPolicies is the namespace's offloadPolicies (Pulsar's
	// offload_policies); its thresholds are copied to the three fields
	// above when set, which are the ones applied.
	OffloadPolicies *OffloadPolicies `json:"offload_policies,omitempty"`
	// Limits (policies_limits.go). Unset: the broker's default; 0: no limit.
	MaxUnackedMessagesPerConsumer     *int `json:"max_unacked_messages_per_consumer,omitempty"`
	MaxUnackedMessagesPerSubscription *int `json:"max_unacked_messages_per_subscription,omitempty"`
	MaxSubscriptionsPerTopic          *int `json:"max_subscriptions_per_topic,omitempty"`
	MaxTopicsPerNamespace             *int `json:"max_topics_per_namespace,omitempty"`
	// SubscriptionExpirationTimeMinutes: a durable subscription without
	// consumers for this long is deleted (unset: the broker's; 0: never).
	SubscriptionExpirationTimeMinutes *int `json:"subscription_expiration_time_minutes,omitempty"`
	// MaxMessageSize exists on topics only in Pulsar; here it is the
	// topic's value carried through Over (unset: the broker's).
	MaxMessageSize *int `json:"-"`
	// Stored and returned, not acted on: there are no bookies.
	Persistence         *PersistencePolicies `json:"persistence,omitempty"`
	BookieAffinityGroup *BookieAffinityGroup `json:"bookie_affinity_group,omitempty"`
	Properties          map[string]string    `json:"properties,omitempty"`
	// Rates per cluster (policies_rates.go); the replicator's is stored only.
	PublishMaxMessageRate    map[string]PublishRate   `json:"publishMaxMessageRate,omitempty"`
	TopicDispatchRateMap     map[string]DispatchRate  `json:"topicDispatchRate,omitempty"`
	SubscriptionDispatchRate map[string]DispatchRate  `json:"subscriptionDispatchRate,omitempty"`
	ClusterSubscribeRate     map[string]SubscribeRate `json:"clusterSubscribeRate,omitempty"`
	ReplicatorDispatchRate   map[string]DispatchRate  `json:"replicatorDispatchRate,omitempty"`
	// A topic's own rates, carried through Over.
	TopicPublishRate              *PublishRate   `json:"-"`
	TopicDispatchRate             *DispatchRate  `json:"-"`
	TopicSubscriptionDispatchRate *DispatchRate  `json:"-"`
	TopicSubscribeRate            *SubscribeRate `json:"-"`
	// Subscription creation and delayed delivery (policies_delivery.go).
	DeliveryPolicies
}

// PartitionedTopicMetadata is the JSON of a partitioned topic.
type PartitionedTopicMetadata struct {
	Partitions int `json:"partitions"`
}

// Resources gives typed access to the records of a Store.
type Resources struct {
	Store Store
}

func (r *Resources) getJSON(ctx context.Context, key string, v any) (int64, error) {
	kv, err := r.Store.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return kv.Version, nil
}

func (r *Resources) putJSON(ctx context.Context, key string, v any, expected int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = r.Store.Put(ctx, key, b, expected)
	if errors.Is(err, ErrBadVersion) && expected == NotExists {
		return ErrExists
	}
	return err
}

// children lists the direct children names under prefix (which ends in "/").
func (r *Resources) children(ctx context.Context, prefix string) ([]string, error) {
	kvs, err := r.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, kv := range kvs {
		rest := strings.TrimPrefix(kv.Key, prefix)
		name, _, _ := strings.Cut(rest, "/")
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Tenant returns a tenant's info.
func (r *Resources) Tenant(ctx context.Context, name string) (TenantInfo, error) {
	var t TenantInfo
	_, err := r.getJSON(ctx, policiesPrefix+name, &t)
	return t, err
}

// CreateTenant creates a tenant; ErrExists when it exists.
func (r *Resources) CreateTenant(ctx context.Context, name string, t TenantInfo) error {
	if err := naming.ValidateEntity("tenant", name); err != nil {
		return err
	}
	return r.putJSON(ctx, policiesPrefix+name, t, NotExists)
}

// Tenants lists tenant names.
func (r *Resources) Tenants(ctx context.Context) ([]string, error) {
	return r.children(ctx, policiesPrefix)
}

// Namespace returns a namespace's policies.
func (r *Resources) Namespace(ctx context.Context, ns naming.Namespace) (Policies, error) {
	var p Policies
	_, err := r.getJSON(ctx, policiesPrefix+ns.String(), &p)
	return p, err
}

// NamespaceExists reports whether ns exists.
func (r *Resources) NamespaceExists(ctx context.Context, ns naming.Namespace) (bool, error) {
	_, err := r.Store.Get(ctx, policiesPrefix+ns.String())
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// CreateNamespace creates a namespace in an existing tenant.
func (r *Resources) CreateNamespace(ctx context.Context, ns naming.Namespace, p Policies) error {
	if err := ns.Validate(); err != nil {
		return err
	}
	if _, err := r.Store.Get(ctx, policiesPrefix+ns.Tenant); err != nil {
		return fmt.Errorf("tenant %s: %w", ns.Tenant, err)
	}
	return r.putJSON(ctx, policiesPrefix+ns.String(), p, NotExists)
}

// Namespaces lists the namespaces of a tenant as tenant/ns.
func (r *Resources) Namespaces(ctx context.Context, tenant string) ([]string, error) {
	names, err := r.children(ctx, policiesPrefix+tenant+"/")
	for i, n := range names {
		names[i] = tenant + "/" + n
	}
	return names, err
}

func partitionedKey(t naming.Topic) string {
	return partitionedPrefix + t.Namespace.String() + "/" + t.Domain + "/" + t.Local
}

// PartitionedTopic returns the partition count of t, 0 when t is not partitioned.
func (r *Resources) PartitionedTopic(ctx context.Context, t naming.Topic) (int, error) {
	var m PartitionedTopicMetadata
	_, err := r.getJSON(ctx, partitionedKey(t), &m)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return m.Partitions, err
}

// PutPartitionedTopic records t as partitioned with n partitions. With create
// set it fails with ErrExists when t is already partitioned.
func (r *Resources) PutPartitionedTopic(ctx context.Context, t naming.Topic, n int, create bool) error {
	expected := AnyVersion
	if create {
		expected = NotExists
	}
	return r.putJSON(ctx, partitionedKey(t), PartitionedTopicMetadata{Partitions: n}, expected)
}

// DeletePartitionedTopic forgets the partitioned-topic record of t.
func (r *Resources) DeletePartitionedTopic(ctx context.Context, t naming.Topic) error {
	return r.Store.Delete(ctx, partitionedKey(t), AnyVersion)
}

// PartitionedTopics lists the partitioned topics of a namespace in one domain.
func (r *Resources) PartitionedTopics(ctx context.Context, ns naming.Namespace, domain string) ([]string, error) {
	names, err := r.children(ctx, partitionedPrefix+ns.String()+"/"+domain+"/")
	for i, n := range names {
		names[i] = domain + "://" + ns.String() + "/" + n
	}
	return names, err
}

// Bootstrap creates the cluster, the public tenant and public/default namespace
// when missing, as a standalone Pulsar does on first start.
func (r *Resources) Bootstrap(ctx context.Context, cluster string, cd ClusterData) error {
	if err := r.bootstrapCluster(ctx, cluster, cd); err != nil {
		return err
	}
	for _, t := range []string{naming.DefaultTenant, "pulsar"} {
		err := r.CreateTenant(ctx, t, TenantInfo{AdminRoles: []string{}, AllowedClusters: []string{cluster}})
		if err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	for _, ns := range []naming.Namespace{{Tenant: naming.DefaultTenant, Name: naming.DefaultNamespace}, {Tenant: "pulsar", Name: "system"}} {
		err := r.CreateNamespace(ctx, ns, Policies{ReplicationClusters: []string{cluster}})
		if err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	return nil
}

// UpdateNamespace applies fn to a namespace's policies with compare-and-set,
// retrying when another writer got in between.
func (r *Resources) UpdateNamespace(ctx context.Context, ns naming.Namespace, fn func(*Policies) error) error {
	key := policiesPrefix + ns.String()
	for {
		var p Policies
		version, err := r.getJSON(ctx, key, &p)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		err = r.putJSON(ctx, key, p, version)
		if !errors.Is(err, ErrBadVersion) {
			return err
		}
	}
}

// UpdateTenant replaces the info of an existing tenant; ErrNotFound when missing.
func (r *Resources) UpdateTenant(ctx context.Context, name string, t TenantInfo) error {
	for {
		kv, err := r.Store.Get(ctx, policiesPrefix+name)
		if err != nil {
			return err
		}
		// The version check keeps a concurrent delete from being undone.
		err = r.putJSON(ctx, policiesPrefix+name, t, kv.Version)
		if !errors.Is(err, ErrBadVersion) {
			return err
		}
	}
}

// DeleteTenant removes a tenant record; ErrNotFound when missing. The caller
// checks that it has no namespaces left.
func (r *Resources) DeleteTenant(ctx context.Context, name string) error {
	return r.Store.Delete(ctx, policiesPrefix+name, AnyVersion)
}

// DeleteNamespace removes a namespace and its policies; ErrNotFound when
// missing. The caller checks that it has no topics left.
func (r *Resources) DeleteNamespace(ctx context.Context, ns naming.Namespace) error {
	if err := r.Store.Delete(ctx, policiesPrefix+ns.String(), AnyVersion); err != nil {
		return err
	}
	if err := r.deleteNamespaceTopicPolicies(ctx, ns); err != nil {
		return err
	}
	return r.deleteNamespaceSchemas(ctx, ns)
}

// Key prefixes of namespace policies and of topic policies (one record per
// topic that has any; Pulsar keeps them in a system topic, a record is
// simpler and is watched like namespace policies), for watches.
const (
	NamespacePoliciesPrefix = policiesPrefix
	TopicPoliciesPrefix     = "/admin/topic-policies/"
)

// TopicPolicies are the policies set on one topic, with the JSON names of
// Pulsar's TopicPolicies. Unset fields defer to the namespace's policies.
// A partitioned topic has one record for all its partitions.
type TopicPolicies struct {
	BacklogQuotaMap             map[string]BacklogQuota `json:"backLogQuotaMap,omitempty"`
	Retention                   *RetentionPolicies      `json:"retentionPolicies,omitempty"`
	DeduplicationEnabled        *bool                   `json:"deduplicationEnabled,omitempty"`
	MessageTTLInSeconds         *int                    `json:"messageTTLInSeconds,omitempty"`
	MaxProducerPerTopic         *int                    `json:"maxProducerPerTopic,omitempty"`
	MaxConsumerPerTopic         *int                    `json:"maxConsumerPerTopic,omitempty"`
	MaxConsumersPerSubscription *int                    `json:"maxConsumersPerSubscription,omitempty"`
	SchemaCompatibilityStrategy string                  `json:"schemaCompatibilityStrategy,omitempty"`
	SchemaValidationEnforced    *bool                   `json:"schemaValidationEnforced,omitempty"`
	CompactionThreshold         *int64                  `json:"compactionThreshold,omitempty"`
	// Limits (policies_limits.go).
	MaxUnackedMessagesOnConsumer     *int                 `json:"maxUnackedMessagesOnConsumer,omitempty"`
	MaxUnackedMessagesOnSubscription *int                 `json:"maxUnackedMessagesOnSubscription,omitempty"`
	MaxSubscriptionsPerTopic         *int                 `json:"maxSubscriptionsPerTopic,omitempty"`
	MaxMessageSize                   *int                 `json:"maxMessageSize,omitempty"`
	Persistence                      *PersistencePolicies `json:"persistence,omitempty"`
	// Properties are the topic's properties (Pulsar keeps them with the
	// managed ledger; here with the topic's policies, so a partitioned
	// topic's partitions share them).
	Properties map[string]string `json:"properties,omitempty"`
	// Rates (policies_rates.go); the replicator's is stored only.
	PublishRate              *PublishRate     `json:"publishRate,omitempty"`
	DispatchRate             *DispatchRate    `json:"dispatchRate,omitempty"`
	SubscriptionDispatchRate *DispatchRate    `json:"subscriptionDispatchRate,omitempty"`
	SubscribeRate            *SubscribeRate   `json:"subscribeRate,omitempty"`
	ReplicatorDispatchRate   *DispatchRate    `json:"replicatorDispatchRate,omitempty"`
	OffloadPolicies          *OffloadPolicies `json:"offloadPolicies,omitempty"`
	// ReplicationClusters replaces the namespace's replication_clusters
	// for this topic (Pulsar's topic-level replicationClusters).
	ReplicationClusters []string `json:"replicationClusters,omitempty"`
	// Subscription creation and delayed delivery (policies_delivery.go).
	TopicDeliveryPolicies
}

// OffloadPolicies are a topic's offload overrides, in the JSON of Pulsar's
// OffloadPoliciesImpl. The three thresholds override the namespace's
// offload_threshold, offload_threshold_in_seconds and
// offload_deletion_lag_ms when set (null: inherited). The driver fields
// are kept and answered back, but every topic uses the broker's store.
type OffloadPolicies struct {
	ThresholdInBytes    *int64 `json:"managedLedgerOffloadThresholdInBytes,omitempty"`
	ThresholdInSeconds  *int64 `json:"managedLedgerOffloadThresholdInSeconds,omitempty"`
	DeletionLagInMillis *int64 `json:"managedLedgerOffloadDeletionLagInMillis,omitempty"`
	Driver              string `json:"managedLedgerOffloadDriver,omitempty"`
	Bucket              string `json:"managedLedgerOffloadBucket,omitempty"`
	Region              string `json:"managedLedgerOffloadRegion,omitempty"`
	ServiceEndpoint     string `json:"managedLedgerOffloadServiceEndpoint,omitempty"`
	S3Bucket            string `json:"s3ManagedLedgerOffloadBucket,omitempty"`
	S3Region            string `json:"s3ManagedLedgerOffloadRegion,omitempty"`
	S3ServiceEndpoint   string `json:"s3ManagedLedgerOffloadServiceEndpoint,omitempty"`
	MaxThreads          *int   `json:"managedLedgerOffloadMaxThreads,omitempty"`
	// AutoTriggerSizeThresholdBytes is the broker.conf name of the
	// threshold in bytes, sent by pulsar-client-go: read as
	// ThresholdInBytes when that is absent.
	AutoTriggerSizeThresholdBytes *int64 `json:"managedLedgerOffloadAutoTriggerSizeThresholdBytes,omitempty"`
	ReadPriority                  string `json:"managedLedgerOffloadedReadPriority,omitempty"`
}

// IsEmpty reports whether no policy is set. Every field is omitempty, so an
// empty record encodes as {} (and a new field cannot be forgotten here).
func (tp TopicPolicies) IsEmpty() bool {
	b, err := json.Marshal(tp)
	return err == nil && string(b) == "{}"
}

// Over returns ns with the policies set on the topic taking precedence.
// Backlog quotas override per type, as in Pulsar. ns is not modified.
func (tp TopicPolicies) Over(ns Policies) Policies {
	p := ns
	if len(tp.BacklogQuotaMap) > 0 {
		p.BacklogQuotaMap = make(map[string]BacklogQuota, len(ns.BacklogQuotaMap)+len(tp.BacklogQuotaMap))
		for k, v := range ns.BacklogQuotaMap {
			p.BacklogQuotaMap[k] = v
		}
		for k, v := range tp.BacklogQuotaMap {
			p.BacklogQuotaMap[k] = v
		}
	}
	if tp.Retention != nil {
		p.Retention = tp.Retention
	}
	if len(tp.ReplicationClusters) > 0 {
		p.ReplicationClusters = tp.ReplicationClusters
	}
	if tp.DeduplicationEnabled != nil {
		p.DeduplicationEnabled = tp.DeduplicationEnabled
	}
	if tp.MessageTTLInSeconds != nil {
		p.MessageTTLInSeconds = tp.MessageTTLInSeconds
	}
	if tp.MaxProducerPerTopic != nil {
		p.MaxProducersPerTopic = tp.MaxProducerPerTopic
	}
	if tp.MaxConsumerPerTopic != nil {
		p.MaxConsumersPerTopic = tp.MaxConsumerPerTopic
	}
	if tp.MaxConsumersPerSubscription != nil {
		p.MaxConsumersPerSubscription = tp.MaxConsumersPerSubscription
	}
	if tp.SchemaCompatibilityStrategy != "" {
		p.SchemaCompatibilityStrategy = tp.SchemaCompatibilityStrategy
	}
	if tp.SchemaValidationEnforced != nil {
		p.SchemaValidationEnforced = *tp.SchemaValidationEnforced
	}
	if tp.CompactionThreshold != nil {
		p.CompactionThreshold = tp.CompactionThreshold
	}
	tp.limitsOver(&p)
	tp.ratesOver(&p)
	tp.deliveryOver(&p)
	if o := tp.OffloadPolicies; o != nil {
		if o.ThresholdInBytes != nil {
			p.OffloadThreshold = o.ThresholdInBytes
		}
		if o.ThresholdInSeconds != nil {
			p.OffloadThresholdInSeconds = o.ThresholdInSeconds
		}
		if o.DeletionLagInMillis != nil {
			p.OffloadDeletionLagMs = o.DeletionLagInMillis
		}
	}
	return p
}

// TopicPoliciesKey is the key of t's policies: the partitioned topic's for a
// partition, since Pulsar applies a partitioned topic's policies to all its
// partitions.
func TopicPoliciesKey(t naming.Topic) string {
	t = t.Partitioned()
	return TopicPoliciesPrefix + t.Namespace.String() + "/" + t.Domain + "/" + t.Local
}

// TopicPolicies returns the policies set on t (none set: the zero value).
func (r *Resources) TopicPolicies(ctx context.Context, t naming.Topic) (TopicPolicies, error) {
	var tp TopicPolicies
	_, err := r.getJSON(ctx, TopicPoliciesKey(t), &tp)
	if errors.Is(err, ErrNotFound) {
		return TopicPolicies{}, nil
	}
	return tp, err
}

// UpdateTopicPolicies applies fn to t's policies with compare-and-set,
// retrying when another writer got in between. The record is deleted once
// no policy is left.
func (r *Resources) UpdateTopicPolicies(ctx context.Context, t naming.Topic, fn func(*TopicPolicies) error) error {
	key := TopicPoliciesKey(t)
	for {
		var tp TopicPolicies
		version, err := r.getJSON(ctx, key, &tp)
		if errors.Is(err, ErrNotFound) {
			version, err = NotExists, nil
		}
		if err != nil {
			return err
		}
		if err := fn(&tp); err != nil {
			return err
		}
		if tp.IsEmpty() {
			if version == NotExists {
				return nil
			}
			err = r.Store.Delete(ctx, key, version)
		} else {
			err = r.putJSON(ctx, key, tp, version)
		}
		if !errors.Is(err, ErrBadVersion) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
}

// DeleteTopicPolicies forgets the policies of t (a deleted topic's must not
// apply to a new topic of the same name).
func (r *Resources) DeleteTopicPolicies(ctx context.Context, t naming.Topic) error {
	err := r.Store.Delete(ctx, TopicPoliciesKey(t), AnyVersion)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// deleteNamespaceTopicPolicies forgets the topic policies of every topic of ns.
func (r *Resources) deleteNamespaceTopicPolicies(ctx context.Context, ns naming.Namespace) error {
	kvs, err := r.Store.List(ctx, TopicPoliciesPrefix+ns.String()+"/")
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := r.Store.Delete(ctx, kv.Key, AnyVersion); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
