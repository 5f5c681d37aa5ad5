package meta

// DeliveryPolicies are the namespace policies on how subscriptions are
// created and messages delivered, with Pulsar's JSON names; embedded in
// Policies.
type DeliveryPolicies struct {
	// DelayedDelivery turns delayed delivery off (active false: messages
	// with a deliver-at time are dispatched at once) and bounds the delay a
	// producer may ask for (maxDeliveryDelayInMillis, 0: no bound).
	DelayedDelivery *DelayedDeliveryPolicies `json:"delayed_delivery_policies,omitempty"`
	// AutoSubscriptionCreation overrides whether a consumer may create a
	// subscription that does not exist (the broker's
	// --allow-auto-subscription-creation otherwise).
	AutoSubscriptionCreation *AutoSubscriptionCreationOverride `json:"autoSubscriptionCreationOverride,omitempty"`
	// DeduplicationSnapshotIntervalSeconds is stored and returned: the
	// deduplication state here is written with every publish group, so
	// there is no snapshot to schedule.
	DeduplicationSnapshotIntervalSeconds *int `json:"deduplicationSnapshotIntervalSeconds,omitempty"`
	// SubscriptionAuthMode is Pulsar's None or Prefix.
	SubscriptionAuthMode string `json:"subscription_auth_mode,omitempty"`
}

// DelayedDeliveryPolicies is Pulsar's DelayedDeliveryPolicies.
type DelayedDeliveryPolicies struct {
	TickTime                 int64 `json:"tickTime"`
	Active                   bool  `json:"active"`
	MaxDeliveryDelayInMillis int64 `json:"maxDeliveryDelayInMillis"`
}

// AutoSubscriptionCreationOverride is Pulsar's override of the broker's
// allowAutoSubscriptionCreation.
type AutoSubscriptionCreationOverride struct {
	AllowAutoSubscriptionCreation bool `json:"allowAutoSubscriptionCreation"`
}

// TopicDeliveryPolicies are the topic-level forms of DeliveryPolicies, with
// the names of Pulsar's TopicPolicies; embedded in TopicPolicies.
type TopicDeliveryPolicies struct {
	DelayedDeliveryEnabled               *bool                             `json:"delayedDeliveryEnabled,omitempty"`
	DelayedDeliveryTickTimeMillis        *int64                            `json:"delayedDeliveryTickTimeMillis,omitempty"`
	DelayedDeliveryMaxDelayInMillis      *int64                            `json:"delayedDeliveryMaxDelayInMillis,omitempty"`
	AutoSubscriptionCreation             *AutoSubscriptionCreationOverride `json:"autoSubscriptionCreationOverride,omitempty"`
	DeduplicationSnapshotIntervalSeconds *int                              `json:"deduplicationSnapshotIntervalSeconds,omitempty"`
}

// deliveryOver lays the topic's delivery policies over p (see Over).
func (tp TopicPolicies) deliveryOver(p *Policies) {
	if tp.DelayedDeliveryEnabled != nil {
		d := DelayedDeliveryPolicies{Active: *tp.DelayedDeliveryEnabled}
		if tp.DelayedDeliveryTickTimeMillis != nil {
			d.TickTime = *tp.DelayedDeliveryTickTimeMillis
		}
		if tp.DelayedDeliveryMaxDelayInMillis != nil {
			d.MaxDeliveryDelayInMillis = *tp.DelayedDeliveryMaxDelayInMillis
		}
		p.DelayedDelivery = &d
	}
	if tp.AutoSubscriptionCreation != nil {
		p.AutoSubscriptionCreation = tp.AutoSubscriptionCreation
	}
	if tp.DeduplicationSnapshotIntervalSeconds != nil {
		p.DeduplicationSnapshotIntervalSeconds = tp.DeduplicationSnapshotIntervalSeconds
	}
}
