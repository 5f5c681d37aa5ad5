package admin

import (
	"net/http"
	"slices"

	"github.com/messagebus/messagebus/internal/meta"
)

// The delivery policies (broker/delivery.go) and subscription permissions,
// on namespaces and topics, with Pulsar's paths, JSON and words.

func (s *Server) deliveryPolicyRoutes(m *http.ServeMux, ns string) {
	s.optionalPolicy(m, ns+"delayedDelivery", "a delayed delivery policy", getDelayedDelivery, setDelayedDelivery)
	s.optionalPolicy(m, ns+"autoSubscriptionCreation", "an auto subscription creation override",
		getAutoSubscriptionCreation, setAutoSubscriptionCreation)
	s.optionalPolicy(m, ns+"deduplicationSnapshotInterval", "a number of seconds",
		intPolicyGetter(dedupSnapshotInterval), intPolicySetter(dedupSnapshotInterval, "deduplicationSnapshotInterval"))
	s.optionalPolicy(m, ns+"subscriptionAuthMode", `"None" or "Prefix"`, getSubscriptionAuthMode, setSubscriptionAuthMode)
	m.HandleFunc("GET "+ns+"permissions/subscription", s.getSubscriptionPermissions)
	m.HandleFunc("POST "+ns+"permissions/subscription/{sub}", s.grantSubscriptionPermission)
	m.HandleFunc("DELETE "+ns+"permissions/{sub}/{role}", s.revokeSubscriptionPermission)
}

func dedupSnapshotInterval(p *meta.Policies) **int { return &p.DeduplicationSnapshotIntervalSeconds }

// delayedDeliveryBody is what clients send: Pulsar's
// DelayedDeliveryPolicies, or pulsaradmin's DelayedDeliveryData, which
// names the maximum maxDelayInMillis and may send tickTime as a float.
type delayedDeliveryBody struct {
	TickTime                 float64 `json:"tickTime"`
	Active                   bool    `json:"active"`
	MaxDeliveryDelayInMillis *int64  `json:"maxDeliveryDelayInMillis"`
	MaxDelayInMillis         *int64  `json:"maxDelayInMillis"`
}

func decodeDelayedDelivery(body []byte) (meta.DelayedDeliveryPolicies, error) {
	var b delayedDeliveryBody
	if err := decode(body, &b, "a delayed delivery policy"); err != nil {
		return meta.DelayedDeliveryPolicies{}, err
	}
	d := meta.DelayedDeliveryPolicies{TickTime: int64(b.TickTime), Active: b.Active}
	switch {
	case b.MaxDeliveryDelayInMillis != nil:
		d.MaxDeliveryDelayInMillis = *b.MaxDeliveryDelayInMillis
	case b.MaxDelayInMillis != nil:
		d.MaxDeliveryDelayInMillis = *b.MaxDelayInMillis
	}
	if d.TickTime < 0 || d.MaxDeliveryDelayInMillis < 0 {
		return d, errorf(http.StatusPreconditionFailed, "tickTime and maxDeliveryDelayInMillis must be 0 or more")
	}
	return d, nil
}

func getDelayedDelivery(p *meta.Policies) any {
	if p.DelayedDelivery == nil {
		return nil
	}
	return p.DelayedDelivery
}

func setDelayedDelivery(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.DelayedDelivery = nil
		return nil
	}
	d, err := decodeDelayedDelivery(body)
	if err != nil {
		return err
	}
	p.DelayedDelivery = &d
	return nil
}

func getAutoSubscriptionCreation(p *meta.Policies) any {
	if p.AutoSubscriptionCreation == nil {
		return nil
	}
	return p.AutoSubscriptionCreation
}

func setAutoSubscriptionCreation(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.AutoSubscriptionCreation = nil
		return nil
	}
	var o meta.AutoSubscriptionCreationOverride
	if err := decode(body, &o, "an auto subscription creation override"); err != nil {
		return err
	}
	p.AutoSubscriptionCreation = &o
	return nil
}

func getSubscriptionAuthMode(p *meta.Policies) any {
	if p.SubscriptionAuthMode == "" {
		return "None"
	}
	return p.SubscriptionAuthMode
}

// setSubscriptionAuthMode stores the mode. Prefix (a subscription name
// must start with the role) is stored but not enforced: the README says so.
func setSubscriptionAuthMode(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.SubscriptionAuthMode = ""
		return nil
	}
	var mode string
	if err := decode(body, &mode, `"None" or "Prefix"`); err != nil {
		return err
	}
	if mode != "None" && mode != "Prefix" {
		return errorf(http.StatusBadRequest, `subscription auth mode must be "None" or "Prefix", not %q`, mode)
	}
	p.SubscriptionAuthMode = mode
	return nil
}

// Subscription permissions (auth_policies.subscription_auth_roles): when a
// subscription has roles, only they may consume from it (besides
// superusers and tenant admins).

func (s *Server) getSubscriptionPermissions(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, authPolicies(&p).SubscriptionAuthRoles)
}

func (s *Server) grantSubscriptionPermission(w http.ResponseWriter, r *http.Request) {
	var roles []string
	if !requireBody(w, r, maxValueBytes, &roles, "a list of roles") {
		return
	}
	if len(roles) == 0 {
		writeError(w, http.StatusBadRequest, "the list of roles is empty")
		return
	}
	slices.Sort(roles)
	roles = slices.Compact(roles)
	sub := r.PathValue("sub")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		authPolicies(p).SubscriptionAuthRoles[sub] = roles
		return nil
	})
}

func (s *Server) revokeSubscriptionPermission(w http.ResponseWriter, r *http.Request) {
	sub, role := r.PathValue("sub"), r.PathValue("role")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		a := authPolicies(p)
		roles, ok := a.SubscriptionAuthRoles[sub]
		if !ok {
			return errorf(http.StatusNotFound, "subscription %s has no permissions", sub)
		}
		roles = slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return r == role })
		if len(roles) == 0 {
			delete(a.SubscriptionAuthRoles, sub)
		} else {
			a.SubscriptionAuthRoles[sub] = roles
		}
		return nil
	})
}

// Topic level: Pulsar's TopicPolicies names; GET answers the
// namespace-level shapes.

func (s *Server) topicDeliveryPolicyRoutes(m *http.ServeMux, d, topic string) {
	s.topicPolicy(m, d, topic+"delayedDelivery", topicPolicy{
		what: "a delayed delivery policy",
		get: func(tp *meta.TopicPolicies) any {
			if tp.DelayedDeliveryEnabled == nil {
				return nil
			}
			return tp.Over(meta.Policies{}).DelayedDelivery
		},
		applied: func(p *meta.Policies) any { return getDelayedDelivery(p) },
		set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
			dd, err := decodeDelayedDelivery(body)
			if err != nil {
				return err
			}
			tp.DelayedDeliveryEnabled = &dd.Active
			tp.DelayedDeliveryTickTimeMillis = &dd.TickTime
			tp.DelayedDeliveryMaxDelayInMillis = &dd.MaxDeliveryDelayInMillis
			return nil
		},
		remove: func(tp *meta.TopicPolicies) {
			tp.DelayedDeliveryEnabled, tp.DelayedDeliveryTickTimeMillis, tp.DelayedDeliveryMaxDelayInMillis = nil, nil, nil
		},
	})
	s.topicPolicy(m, d, topic+"autoSubscriptionCreation", topicPolicy{
		what: "an auto subscription creation override",
		get: func(tp *meta.TopicPolicies) any {
			if tp.AutoSubscriptionCreation == nil {
				return nil
			}
			return tp.AutoSubscriptionCreation
		},
		applied: func(p *meta.Policies) any { return getAutoSubscriptionCreation(p) },
		set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
			var o meta.AutoSubscriptionCreationOverride
			if err := decode(body, &o, "an auto subscription creation override"); err != nil {
				return err
			}
			tp.AutoSubscriptionCreation = &o
			return nil
		},
		remove: func(tp *meta.TopicPolicies) { tp.AutoSubscriptionCreation = nil },
	})
	s.topicPolicy(m, d, topic+"deduplicationSnapshotInterval", intTopicPolicy("deduplicationSnapshotInterval",
		func(tp *meta.TopicPolicies) **int { return &tp.DeduplicationSnapshotIntervalSeconds }, dedupSnapshotInterval))
}
