package meta

// Rate policies, with Pulsar's JSON. Namespaces keep them per cluster (the
// maps of Policies, keyed by cluster name); a topic's own value overrides
// the local cluster's entry (carried through Over in the Topic* fields).

// PublishRate limits what producers may publish to a topic, per second
// (-1 or 0: no limit).
type PublishRate struct {
	PublishThrottlingRateInMsg  int   `json:"publishThrottlingRateInMsg"`
	PublishThrottlingRateInByte int64 `json:"publishThrottlingRateInByte"`
}

// DispatchRate limits what is dispatched to consumers per period
// (-1 or 0: no limit).
type DispatchRate struct {
	DispatchThrottlingRateInMsg  int   `json:"dispatchThrottlingRateInMsg"`
	DispatchThrottlingRateInByte int64 `json:"dispatchThrottlingRateInByte"`
	RelativeToPublishRate        bool  `json:"relativeToPublishRate"`
	RatePeriodInSecond           int   `json:"ratePeriodInSecond"`
}

// SubscribeRate limits the subscribe requests of one consumer (address and
// name) per period (-1 or 0: no limit).
type SubscribeRate struct {
	SubscribeThrottlingRatePerConsumer int `json:"subscribeThrottlingRatePerConsumer"`
	RatePeriodInSecond                 int `json:"ratePeriodInSecond"`
}

// RatePolicies are the rates in force for one topic (see Policies.Rates).
type RatePolicies struct {
	Publish              *PublishRate
	Dispatch             *DispatchRate
	SubscriptionDispatch *DispatchRate
	Subscribe            *SubscribeRate
}

// Rates returns the rates in force on cluster: the topic's own, else the
// namespace's entry for the cluster.
func (p Policies) Rates(cluster string) RatePolicies {
	r := RatePolicies{Publish: p.TopicPublishRate, Dispatch: p.TopicDispatchRate,
		SubscriptionDispatch: p.TopicSubscriptionDispatchRate, Subscribe: p.TopicSubscribeRate}
	if r.Publish == nil {
		if v, ok := p.PublishMaxMessageRate[cluster]; ok {
			r.Publish = &v
		}
	}
	if r.Dispatch == nil {
		if v, ok := p.TopicDispatchRateMap[cluster]; ok {
			r.Dispatch = &v
		}
	}
	if r.SubscriptionDispatch == nil {
		if v, ok := p.SubscriptionDispatchRate[cluster]; ok {
			r.SubscriptionDispatch = &v
		}
	}
	if r.Subscribe == nil {
		if v, ok := p.ClusterSubscribeRate[cluster]; ok {
			r.Subscribe = &v
		}
	}
	return r
}

// ratesOver lays the topic's rates over p (see Over).
func (tp TopicPolicies) ratesOver(p *Policies) {
	if tp.PublishRate != nil {
		p.TopicPublishRate = tp.PublishRate
	}
	if tp.DispatchRate != nil {
		p.TopicDispatchRate = tp.DispatchRate
	}
	if tp.SubscriptionDispatchRate != nil {
		p.TopicSubscriptionDispatchRate = tp.SubscriptionDispatchRate
	}
	if tp.SubscribeRate != nil {
		p.TopicSubscribeRate = tp.SubscribeRate
	}
}
