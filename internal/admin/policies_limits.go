package admin

import (
	"net/http"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// The limit policies (broker/limits.go, broker/unacked.go) and the policies
// kept only for the tools that set them (persistence, bookie affinity,
// properties), on namespaces and topics, with Pulsar's paths and names.

func (s *Server) limitPolicyRoutes(m *http.ServeMux, ns string) {
	intPolicy := func(name string, field func(*meta.Policies) **int) {
		s.optionalPolicy(m, ns+name, "a number", intPolicyGetter(field), intPolicySetter(field, name))
	}
	intPolicy("maxUnackedMessagesPerConsumer", func(p *meta.Policies) **int { return &p.MaxUnackedMessagesPerConsumer })
	intPolicy("maxUnackedMessagesPerSubscription", func(p *meta.Policies) **int { return &p.MaxUnackedMessagesPerSubscription })
	intPolicy("maxSubscriptionsPerTopic", func(p *meta.Policies) **int { return &p.MaxSubscriptionsPerTopic })
	intPolicy("maxTopicsPerNamespace", func(p *meta.Policies) **int { return &p.MaxTopicsPerNamespace })
	s.optionalPolicy(m, ns+"subscriptionExpirationTime", "the expiration time in minutes",
		intPolicyGetter(subscriptionExpiration), setSubscriptionExpiration)
	s.optionalPolicy(m, ns+"persistence", "a persistence policy", getPersistence, setPersistence)
	s.optionalPolicy(m, ns+"persistence/bookieAffinity", "a bookie affinity group", getBookieAffinity, setBookieAffinity)
	m.HandleFunc("GET "+ns+"properties", s.getNamespaceProperties)
	m.HandleFunc("PUT "+ns+"properties", s.putNamespaceProperties)
	m.HandleFunc("DELETE "+ns+"properties", s.clearNamespaceProperties)
	m.HandleFunc("GET "+ns+"property/{key}", s.getNamespaceProperty)
	m.HandleFunc("PUT "+ns+"property/{key}/{value}", s.putNamespaceProperty)
	m.HandleFunc("DELETE "+ns+"property/{key}", s.removeNamespaceProperty)
}

func subscriptionExpiration(p *meta.Policies) **int { return &p.SubscriptionExpirationTimeMinutes }

func setSubscriptionExpiration(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.SubscriptionExpirationTimeMinutes = nil
		return nil
	}
	var n int
	if err := decode(body, &n, "the expiration time in minutes"); err != nil {
		return err
	}
	if n < 0 {
		return errorf(http.StatusPreconditionFailed, "Invalid value for subscription expiration time") // Pulsar's words
	}
	p.SubscriptionExpirationTimeMinutes = &n
	return nil
}

func getPersistence(p *meta.Policies) any {
	if p.Persistence == nil {
		return nil
	}
	return p.Persistence
}

func setPersistence(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.Persistence = nil
		return nil
	}
	pp, err := decodePersistence(body)
	if err != nil {
		return err
	}
	p.Persistence = pp
	return nil
}

// decodePersistence checks a persistence policy as Pulsar does: quorums
// positive, ensemble >= write quorum >= ack quorum.
func decodePersistence(body []byte) (*meta.PersistencePolicies, error) {
	var pp meta.PersistencePolicies
	if err := decode(body, &pp, "a persistence policy"); err != nil {
		return nil, err
	}
	if pp.BookkeeperEnsemble <= 0 || pp.BookkeeperWriteQuorum <= 0 || pp.BookkeeperAckQuorum <= 0 {
		return nil, errorf(http.StatusBadRequest, "Bookkeeper Ensemble, WriteQuorum and AckQuorum must be > 0")
	}
	if pp.BookkeeperEnsemble < pp.BookkeeperWriteQuorum || pp.BookkeeperWriteQuorum < pp.BookkeeperAckQuorum {
		return nil, errorf(http.StatusBadRequest, "Bookkeeper Ensemble (%d) >= WriteQuorum (%d) >= AckQuorum (%d)",
			pp.BookkeeperEnsemble, pp.BookkeeperWriteQuorum, pp.BookkeeperAckQuorum)
	}
	if pp.ManagedLedgerMaxMarkDeleteRate < 0 {
		return nil, errorf(http.StatusBadRequest, "managedLedgerMaxMarkDeleteRate must be 0 or more")
	}
	return &pp, nil
}

func getBookieAffinity(p *meta.Policies) any {
	if p.BookieAffinityGroup == nil {
		return nil
	}
	return p.BookieAffinityGroup
}

func setBookieAffinity(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.BookieAffinityGroup = nil
		return nil
	}
	var g meta.BookieAffinityGroup
	if err := decode(body, &g, "a bookie affinity group"); err != nil {
		return err
	}
	if g.BookkeeperAffinityGroupPrimary == "" {
		return errorf(http.StatusBadRequest, "bookkeeperAffinityGroupPrimary is required")
	}
	p.BookieAffinityGroup = &g
	return nil
}

// Namespace properties: GET answers {} when there are none; PUT merges the
// body's properties into them; DELETE removes them all.

func (s *Server) getNamespaceProperties(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, nonNilMap(p.Properties))
}

func (s *Server) putNamespaceProperties(w http.ResponseWriter, r *http.Request) {
	var props map[string]string
	if !requireBody(w, r, maxBodyBytes, &props, "a map of properties") {
		return
	}
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		p.Properties = mergeProperties(p.Properties, props)
		return nil
	})
}

func (s *Server) clearNamespaceProperties(w http.ResponseWriter, r *http.Request) {
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		p.Properties = nil
		return nil
	})
}

func (s *Server) getNamespaceProperty(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	v, found := p.Properties[r.PathValue("key")]
	if !found {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) putNamespaceProperty(w http.ResponseWriter, r *http.Request) {
	props := map[string]string{r.PathValue("key"): r.PathValue("value")}
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		p.Properties = mergeProperties(p.Properties, props)
		return nil
	})
}

func (s *Server) removeNamespaceProperty(w http.ResponseWriter, r *http.Request) {
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		delete(p.Properties, r.PathValue("key"))
		return nil
	})
}

func mergeProperties(into, from map[string]string) map[string]string {
	if into == nil {
		into = make(map[string]string, len(from))
	}
	for k, v := range from {
		into[k] = v
	}
	return into
}

// Topic-level limits and persistence; properties live with the topic's
// policies (shared by a partitioned topic's partitions).

func (s *Server) topicLimitPolicyRoutes(m *http.ServeMux, d, topic string) {
	s.topicPolicy(m, d, topic+"maxUnackedMessagesOnConsumer", intTopicPolicy("maxUnackedMessagesOnConsumer",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxUnackedMessagesOnConsumer },
		func(p *meta.Policies) **int { return &p.MaxUnackedMessagesPerConsumer }))
	s.topicPolicy(m, d, topic+"maxUnackedMessagesOnSubscription", intTopicPolicy("maxUnackedMessagesOnSubscription",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxUnackedMessagesOnSubscription },
		func(p *meta.Policies) **int { return &p.MaxUnackedMessagesPerSubscription }))
	s.topicPolicy(m, d, topic+"maxSubscriptionsPerTopic", intTopicPolicy("maxSubscriptionsPerTopic",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxSubscriptionsPerTopic },
		func(p *meta.Policies) **int { return &p.MaxSubscriptionsPerTopic }))
	s.topicPolicy(m, d, topic+"maxMessageSize", intTopicPolicy("maxMessageSize",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxMessageSize },
		func(p *meta.Policies) **int { return &p.MaxMessageSize }))
	s.topicPolicy(m, d, topic+"persistence", topicPolicy{
		what: "a persistence policy",
		get: func(tp *meta.TopicPolicies) any {
			if tp.Persistence == nil {
				return nil
			}
			return tp.Persistence
		},
		applied: func(p *meta.Policies) any { return p.Persistence },
		set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
			pp, err := decodePersistence(body)
			if err != nil {
				return err
			}
			tp.Persistence = pp
			return nil
		},
		remove: func(tp *meta.TopicPolicies) { tp.Persistence = nil },
	})
	m.HandleFunc("GET "+topic+"properties", s.topic(d, s.getTopicProperties))
	m.HandleFunc("PUT "+topic+"properties", s.topic(d, s.putTopicProperties))
	m.HandleFunc("DELETE "+topic+"properties", s.topic(d, s.removeTopicProperty))
}

func (s *Server) getTopicProperties(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	v, ok := s.readTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ *meta.Policies) any {
		return nonNilMap(tp.Properties)
	})
	if ok {
		writeJSON(w, http.StatusOK, v)
	}
}

// putTopicProperties merges the body's properties into the topic's.
func (s *Server) putTopicProperties(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	var props map[string]string
	if !requireBody(w, r, maxBodyBytes, &props, "a map of properties") {
		return
	}
	s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
		tp.Properties = mergeProperties(tp.Properties, props)
		return nil
	})
}

// removeTopicProperty removes the property named by ?key=.
func (s *Server) removeTopicProperty(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "the key query parameter is required")
		return
	}
	s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
		delete(tp.Properties, key)
		return nil
	})
}
