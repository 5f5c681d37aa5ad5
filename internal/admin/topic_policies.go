package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Topic policies (Pulsar's "topic-level policies") are stored per topic in
// meta.TopicPolicies; the broker applies each one in place of the
// namespace's. A partitioned topic and its partitions share one set.
//
// GET answers the topic's own value (204 when not set), or with
// ?applied=true the value in force: the topic's, else the namespace's, else
// the broker default. ?isGlobal is accepted and ignored: there is one cluster.
// Like Pulsar, every call needs the topic to exist (404 otherwise).

// topicPolicy is one policy settable on a topic.
type topicPolicy struct {
	what    string                           // the body it takes, for errors
	get     func(tp *meta.TopicPolicies) any // nil when not set
	applied func(p *meta.Policies) any       // the value in force
	set     func(tp *meta.TopicPolicies, ns meta.Policies, body []byte) error
	remove  func(tp *meta.TopicPolicies)
	put     bool // also set with PUT (Pulsar uses PUT for some policies)
}

func (s *Server) topicPolicyRoutes(m *http.ServeMux, d string) {
	topic := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}/"
	s.topicPolicy(m, d, topic+"messageTTL", messageTTLPolicy)
	s.topicPolicy(m, d, topic+"retention", retentionPolicy)
	s.topicPolicy(m, d, topic+"deduplicationEnabled", deduplicationPolicy)
	s.topicPolicy(m, d, topic+"maxProducers", intTopicPolicy("maxProducers",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxProducerPerTopic }, maxProducers))
	s.topicPolicy(m, d, topic+"maxConsumers", intTopicPolicy("maxConsumers",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxConsumerPerTopic }, maxConsumers))
	s.topicPolicy(m, d, topic+"maxConsumersPerSubscription", intTopicPolicy("maxConsumersPerSubscription",
		func(tp *meta.TopicPolicies) **int { return &tp.MaxConsumersPerSubscription }, maxConsumersPerSub))
	s.topicPolicy(m, d, topic+"schemaCompatibilityStrategy", schemaStrategyTopicPolicy)
	s.topicPolicy(m, d, topic+"schemaValidationEnforced", schemaValidationTopicPolicy)
	s.topicLimitPolicyRoutes(m, d, topic)
	s.topicRatePolicyRoutes(m, d, topic)
	s.topicDeliveryPolicyRoutes(m, d, topic)
	s.replicationTopicRoutes(m, d)
	m.HandleFunc("GET "+topic+"backlogQuotaMap", s.topic(d, s.getTopicBacklogQuotaMap))
	m.HandleFunc("POST "+topic+"backlogQuota", s.topic(d, s.setTopicBacklogQuota))
	m.HandleFunc("DELETE "+topic+"backlogQuota", s.topic(d, s.removeTopicBacklogQuota))
}

// topicPolicy registers GET, POST (set) and DELETE (remove) on path.
func (s *Server) topicPolicy(m *http.ServeMux, d, path string, p topicPolicy) {
	m.HandleFunc("GET "+path, s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		v, ok := s.readTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, applied *meta.Policies) any {
			if applied != nil {
				return p.applied(applied)
			}
			return p.get(tp)
		})
		if !ok {
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}))
	set := s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		var raw rawBody
		// Pulsar takes the message TTL as a query parameter, every other value as the body.
		if v, ok := r.URL.Query()["messageTTL"]; ok && strings.HasSuffix(path, "/messageTTL") {
			raw = rawBody(v[0])
		} else if !requireBody(w, r, maxValueBytes, &raw, p.what) {
			return
		}
		s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, ns meta.Policies) error { return p.set(tp, ns, raw) })
	})
	m.HandleFunc("POST "+path, set)
	if p.put {
		m.HandleFunc("PUT "+path, set)
	}
	m.HandleFunc("DELETE "+path, s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
			p.remove(tp)
			return nil
		})
	}))
}

// checkPolicyTopic answers 404 unless the topic and its namespace exist.
func (s *Server) checkPolicyTopic(ctx context.Context, t naming.Topic) error {
	if err := s.checkNamespace(ctx, t); err != nil {
		return err
	}
	if n, err := s.meta.PartitionedTopic(ctx, t.Partitioned()); err != nil || n > 0 {
		return err
	}
	if s.cfg.Broker == nil {
		return errorf(http.StatusServiceUnavailable, "broker is not running")
	}
	exists, err := s.cfg.Broker.TopicExists(ctx, t)
	if err != nil {
		return err
	}
	if !exists {
		return errorf(http.StatusNotFound, "topic %s does not exist", t)
	}
	return nil
}

// readTopicPolicies reads the topic's policies and, with ?applied=true, the
// policies in force, and returns what view makes of them.
func (s *Server) readTopicPolicies(w http.ResponseWriter, r *http.Request, t naming.Topic,
	view func(tp *meta.TopicPolicies, applied *meta.Policies) any) (any, bool) {
	applied, ok := boolParam(w, r, "applied")
	if !ok {
		return nil, false
	}
	if _, ok := boolParam(w, r, "isGlobal"); !ok {
		return nil, false
	}
	ctx := r.Context()
	if err := s.checkPolicyTopic(ctx, t); err != nil {
		s.fail(w, err)
		return nil, false
	}
	tp, err := s.meta.TopicPolicies(ctx, t)
	if err != nil {
		s.fail(w, err)
		return nil, false
	}
	if !applied {
		return view(&tp, nil), true
	}
	ns, err := s.meta.Namespace(ctx, t.Namespace)
	if err != nil {
		s.metaError(w, err, "namespace "+t.Namespace.String())
		return nil, false
	}
	// Read from the store, not the broker's cache, so that a read follows
	// the write before it.
	p := s.cfg.Broker.WithDefaults(tp.Over(ns))
	return view(&tp, &p), true
}

// updateTopicPolicies applies fn to the topic's policies with
// compare-and-set; fn sees the namespace's policies to check values
// against them. Errors of fn answer as they say (errorf) or as a 400.
func (s *Server) updateTopicPolicies(w http.ResponseWriter, r *http.Request, t naming.Topic, fn func(*meta.TopicPolicies, meta.Policies) error) {
	if _, ok := boolParam(w, r, "isGlobal"); !ok {
		return
	}
	ctx := r.Context()
	if err := s.checkPolicyTopic(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	ns, err := s.meta.Namespace(ctx, t.Namespace)
	if err != nil {
		s.metaError(w, err, "namespace "+t.Namespace.String())
		return
	}
	if err := s.meta.UpdateTopicPolicies(ctx, t, func(tp *meta.TopicPolicies) error { return fn(tp, ns) }); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

var messageTTLPolicy = topicPolicy{
	what: "the message TTL in seconds",
	get: func(tp *meta.TopicPolicies) any {
		if tp.MessageTTLInSeconds == nil {
			return nil
		}
		return *tp.MessageTTLInSeconds
	},
	applied: func(p *meta.Policies) any { return valueOr(p.MessageTTLInSeconds, 0) },
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		var ttl int
		if err := decode(body, &ttl, "the message TTL in seconds"); err != nil {
			return err
		}
		if ttl < 0 {
			return errorf(http.StatusPreconditionFailed, "invalid value for message TTL: %d (must be >= 0)", ttl)
		}
		tp.MessageTTLInSeconds = &ttl
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.MessageTTLInSeconds = nil },
}

var retentionPolicy = topicPolicy{
	what: "a retention policy",
	get: func(tp *meta.TopicPolicies) any {
		if tp.Retention == nil {
			return nil
		}
		return tp.Retention
	},
	applied: func(p *meta.Policies) any { return p.Retention },
	set: func(tp *meta.TopicPolicies, ns meta.Policies, body []byte) error {
		var rp meta.RetentionPolicies
		if err := decode(body, &rp, "a retention policy"); err != nil {
			return err
		}
		if err := validateRetention(&rp); err != nil {
			return err
		}
		// Checked against the quota in force: the topic's, else the namespace's.
		if err := checkQuotaFitsRetention(tp.Over(ns).BacklogQuotaMap[meta.BacklogQuotaDestinationStorage], &rp); err != nil {
			return err
		}
		tp.Retention = &rp
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.Retention = nil },
}

var deduplicationPolicy = topicPolicy{
	what: "true or false",
	get: func(tp *meta.TopicPolicies) any {
		if tp.DeduplicationEnabled == nil {
			return nil
		}
		return *tp.DeduplicationEnabled
	},
	applied: func(p *meta.Policies) any { return valueOr(p.DeduplicationEnabled, false) },
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		var enabled bool
		if err := decode(body, &enabled, "true or false"); err != nil {
			return err
		}
		tp.DeduplicationEnabled = &enabled
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.DeduplicationEnabled = nil },
}

// intTopicPolicy is a limit (0: unlimited) stored in field, applied from
// nsField of the namespace.
func intTopicPolicy(name string, field func(*meta.TopicPolicies) **int, nsField func(*meta.Policies) **int) topicPolicy {
	return topicPolicy{
		what: "a number",
		get: func(tp *meta.TopicPolicies) any {
			if v := *field(tp); v != nil {
				return *v
			}
			return nil
		},
		applied: func(p *meta.Policies) any { return valueOr(*nsField(p), 0) },
		set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
			var n int
			if err := decode(body, &n, "a number"); err != nil {
				return err
			}
			if n < 0 {
				return errorf(http.StatusPreconditionFailed, "%s must be 0 or more", name) // Pulsar's words; pulsaradmin compares them
			}
			*field(tp) = &n
			return nil
		},
		remove: func(tp *meta.TopicPolicies) { *field(tp) = nil },
	}
}

func valueOr[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

// getTopicBacklogQuotaMap answers the topic's quotas ({} when none), or
// with ?applied=true the quotas in force per type.
func (s *Server) getTopicBacklogQuotaMap(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	v, ok := s.readTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, applied *meta.Policies) any {
		if applied != nil {
			return applied.BacklogQuotaMap
		}
		if tp.BacklogQuotaMap == nil {
			return map[string]meta.BacklogQuota{}
		}
		return tp.BacklogQuotaMap
	})
	if ok {
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) setTopicBacklogQuota(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	typ, ok := backlogQuotaType(w, r)
	if !ok {
		return
	}
	var q meta.BacklogQuota
	if !requireBody(w, r, maxValueBytes, &q, "a backlog quota") {
		return
	}
	if err := validateBacklogQuota(&q); err != nil {
		s.fail(w, err)
		return
	}
	s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, ns meta.Policies) error {
		if typ == meta.BacklogQuotaDestinationStorage {
			if err := checkQuotaFitsRetention(q, tp.Over(ns).Retention); err != nil {
				return err
			}
		}
		if tp.BacklogQuotaMap == nil {
			tp.BacklogQuotaMap = map[string]meta.BacklogQuota{}
		}
		tp.BacklogQuotaMap[typ] = q
		return nil
	})
}

func (s *Server) removeTopicBacklogQuota(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	typ, ok := backlogQuotaType(w, r)
	if !ok {
		return
	}
	s.updateTopicPolicies(w, r, t, func(tp *meta.TopicPolicies, _ meta.Policies) error {
		delete(tp.BacklogQuotaMap, typ)
		return nil
	})
}
