package admin

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/messagebus/messagebus/internal/meta"
)

// Rate policies (broker/throttle_policies.go). A namespace keeps one value
// per cluster, as Pulsar: these endpoints read and write the local
// cluster's entry. Topics have one value each.

func (s *Server) ratePolicyRoutes(m *http.ServeMux, ns string) {
	local := func() string { return s.cfg.ClusterName }
	route := func(name, what string, get policyGetter, set policySetter) {
		s.optionalPolicy(m, ns+name, what, get, set)
	}
	get, set := clusterRate(local, func(p *meta.Policies) *map[string]meta.PublishRate { return &p.PublishMaxMessageRate })
	route("publishRate", "a publish rate", get, set)
	get, set = clusterRate(local, func(p *meta.Policies) *map[string]meta.DispatchRate { return &p.TopicDispatchRateMap })
	route("dispatchRate", "a dispatch rate", get, set)
	get, set = clusterRate(local, func(p *meta.Policies) *map[string]meta.DispatchRate { return &p.SubscriptionDispatchRate })
	route("subscriptionDispatchRate", "a dispatch rate", get, set)
	get, set = clusterRate(local, func(p *meta.Policies) *map[string]meta.SubscribeRate { return &p.ClusterSubscribeRate })
	route("subscribeRate", "a subscribe rate", get, set)
	get, set = clusterRate(local, func(p *meta.Policies) *map[string]meta.DispatchRate { return &p.ReplicatorDispatchRate })
	route("replicatorDispatchRate", "a dispatch rate", get, set)
}

// clusterRate is the getter and setter of the local cluster's entry of a
// per-cluster rate map.
func clusterRate[T any](cluster func() string, field func(*meta.Policies) *map[string]T) (policyGetter, policySetter) {
	get := func(p *meta.Policies) any {
		if v, ok := (*field(p))[cluster()]; ok {
			return v
		}
		return nil
	}
	set := func(p *meta.Policies, body []byte, remove bool) error {
		m := field(p)
		if remove {
			delete(*m, cluster())
			if len(*m) == 0 {
				*m = nil
			}
			return nil
		}
		var v T
		rateDefaults(&v)
		if err := decodeRate(body, &v); err != nil {
			return err
		}
		if *m == nil {
			*m = map[string]T{}
		}
		(*m)[cluster()] = v
		return nil
	}
	return get, set
}

// rateDefaults sets the fields a rate body may leave out to Pulsar's
// defaults (its PublishRate, DispatchRateImpl and SubscribeRate), so a GET
// answers what Pulsar would: -1 for no limit, a period of 1 s (30 s for
// subscribe rates).
func rateDefaults(v any) {
	switch r := v.(type) {
	case *meta.PublishRate:
		*r = meta.PublishRate{PublishThrottlingRateInMsg: -1, PublishThrottlingRateInByte: -1}
	case *meta.DispatchRate:
		*r = meta.DispatchRate{DispatchThrottlingRateInMsg: -1, DispatchThrottlingRateInByte: -1, RatePeriodInSecond: 1}
	case *meta.SubscribeRate:
		*r = meta.SubscribeRate{SubscribeThrottlingRatePerConsumer: -1, RatePeriodInSecond: 30}
	}
}

// decodeRate decodes a rate object, refusing unknown fields (a misspelt
// field would otherwise silently mean "no limit").
func decodeRate(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "request body must be a rate object: %v", err)
	}
	return nil
}

func (s *Server) topicRatePolicyRoutes(m *http.ServeMux, d, topic string) {
	s.topicPolicy(m, d, topic+"publishRate", topicRate(func(tp *meta.TopicPolicies) **meta.PublishRate { return &tp.PublishRate },
		func(p *meta.Policies, c string) any { return p.Rates(c).Publish }, s.cfg.ClusterName))
	s.topicPolicy(m, d, topic+"dispatchRate", topicRate(func(tp *meta.TopicPolicies) **meta.DispatchRate { return &tp.DispatchRate },
		func(p *meta.Policies, c string) any { return p.Rates(c).Dispatch }, s.cfg.ClusterName))
	s.topicPolicy(m, d, topic+"subscriptionDispatchRate", topicRate(func(tp *meta.TopicPolicies) **meta.DispatchRate { return &tp.SubscriptionDispatchRate },
		func(p *meta.Policies, c string) any { return p.Rates(c).SubscriptionDispatch }, s.cfg.ClusterName))
	s.topicPolicy(m, d, topic+"subscribeRate", topicRate(func(tp *meta.TopicPolicies) **meta.SubscribeRate { return &tp.SubscribeRate },
		func(p *meta.Policies, c string) any { return p.Rates(c).Subscribe }, s.cfg.ClusterName))
	s.topicPolicy(m, d, topic+"replicatorDispatchRate", topicRate(func(tp *meta.TopicPolicies) **meta.DispatchRate { return &tp.ReplicatorDispatchRate },
		func(p *meta.Policies, c string) any {
			if v, ok := p.ReplicatorDispatchRate[c]; ok {
				return v
			}
			return nil
		}, s.cfg.ClusterName))
}

// topicRate is a topic's rate policy stored in field; applied answers the
// rate in force (the topic's, else the namespace's for the local cluster).
func topicRate[T any](field func(*meta.TopicPolicies) **T, applied func(*meta.Policies, string) any, cluster string) topicPolicy {
	return topicPolicy{
		what: "a rate object",
		get: func(tp *meta.TopicPolicies) any {
			if v := *field(tp); v != nil {
				return v
			}
			return nil
		},
		applied: func(p *meta.Policies) any { return nilIfNilPtr(applied(p, cluster)) },
		set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
			v := new(T)
			rateDefaults(v)
			if err := decodeRate(body, v); err != nil {
				return err
			}
			*field(tp) = v
			return nil
		},
		remove: func(tp *meta.TopicPolicies) { *field(tp) = nil },
	}
}

// nilIfNilPtr turns a typed nil pointer in an interface into nil (204).
func nilIfNilPtr(v any) any {
	switch x := v.(type) {
	case *meta.PublishRate:
		if x == nil {
			return nil
		}
	case *meta.DispatchRate:
		if x == nil {
			return nil
		}
	case *meta.SubscribeRate:
		if x == nil {
			return nil
		}
	}
	return v
}
