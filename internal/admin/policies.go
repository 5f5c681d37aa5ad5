package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
)

// Namespace policies are stored in meta.Policies; the broker applies them.
// A policy that is not set reads as 204 No Content, as in Pulsar.

func (s *Server) policyRoutes(m *http.ServeMux) {
	const ns = "/admin/v2/namespaces/{tenant}/{ns}/"
	s.optionalPolicy(m, ns+"retention", "a retention policy", getRetention, setRetention)
	s.optionalPolicy(m, ns+"messageTTL", "the message TTL in seconds", getMessageTTL, setMessageTTL)
	s.optionalPolicy(m, ns+"deduplication", "true or false", getDeduplication, setDeduplication)
	s.optionalPolicy(m, ns+"autoTopicCreation", "an auto topic creation override", getAutoTopicCreation, setAutoTopicCreation)
	s.optionalPolicy(m, ns+"maxProducersPerTopic", "a number", intPolicyGetter(maxProducers), intPolicySetter(maxProducers, "maxProducersPerTopic"))
	s.optionalPolicy(m, ns+"maxConsumersPerTopic", "a number", intPolicyGetter(maxConsumers), intPolicySetter(maxConsumers, "maxConsumersPerTopic"))
	s.optionalPolicy(m, ns+"maxConsumersPerSubscription", "a number", intPolicyGetter(maxConsumersPerSub), intPolicySetter(maxConsumersPerSub, "maxConsumersPerSubscription"))
	m.HandleFunc("GET "+ns+"backlogQuotaMap", s.getBacklogQuotaMap)
	m.HandleFunc("POST "+ns+"backlogQuota", s.setBacklogQuota)
	m.HandleFunc("DELETE "+ns+"backlogQuota", s.removeBacklogQuota)
	m.HandleFunc("GET "+ns+"permissions", s.getPermissions)
	m.HandleFunc("POST "+ns+"permissions/{role}", s.grantPermission)
	m.HandleFunc("DELETE "+ns+"permissions/{role}", s.revokePermission)
	s.limitPolicyRoutes(m, ns)
	s.ratePolicyRoutes(m, ns)
	s.deliveryPolicyRoutes(m, ns)
	m.HandleFunc("GET "+ns+"replication", s.getReplication)
	m.HandleFunc("POST "+ns+"replication", s.setReplication)
}

// policyGetter returns a policy's value, nil when not set.
type policyGetter func(p *meta.Policies) any

// policySetter decodes a body into the policy (nil value: remove it). It
// returns an error for values out of range.
type policySetter func(p *meta.Policies, body []byte, remove bool) error

// optionalPolicy registers GET, POST (set) and DELETE (remove) on path.
func (s *Server) optionalPolicy(m *http.ServeMux, path, what string, get policyGetter, set policySetter) {
	m.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.namespacePolicies(w, r)
		if !ok {
			return
		}
		if v := get(&p); v != nil {
			writeJSON(w, http.StatusOK, v)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		var raw rawBody
		if !requireBody(w, r, maxValueBytes, &raw, what) {
			return
		}
		s.updatePolicies(w, r, func(p *meta.Policies) error { return set(p, raw, false) })
	})
	m.HandleFunc("DELETE "+path, func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *meta.Policies) error { return set(p, nil, true) })
	})
}

// rawBody keeps a JSON body undecoded (readBody still checks it is JSON).
type rawBody []byte

func (b *rawBody) UnmarshalJSON(data []byte) error {
	*b = append((*b)[:0], data...)
	return nil
}

// updatePolicies applies fn to the path's namespace with compare-and-set.
// Errors of fn answer as they say (errorf) or as a 400.
func (s *Server) updatePolicies(w http.ResponseWriter, r *http.Request, fn func(*meta.Policies) error) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	if err := s.meta.UpdateNamespace(r.Context(), ns, fn); err != nil {
		if isNotFound(err) {
			// Pulsar's reasons, word for word (pulsaradmin's tests compare them).
			reason := "Namespace does not exist"
			if _, err := s.meta.Tenant(r.Context(), ns.Tenant); isNotFound(err) {
				reason = "Tenant does not exist"
			}
			writeError(w, http.StatusNotFound, reason)
			return
		}
		s.fail(w, err)
		return
	}
	noContent(w)
}

func decode(body []byte, v any, what string) error {
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, "request body must be %s: %v", what, err)
	}
	return nil
}

func getRetention(p *meta.Policies) any {
	if p.Retention == nil {
		return nil
	}
	return p.Retention
}

func setRetention(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.Retention = nil
		return nil
	}
	var rp meta.RetentionPolicies
	if err := decode(body, &rp, "a retention policy"); err != nil {
		return err
	}
	if err := validateRetention(&rp); err != nil {
		return err
	}
	if err := checkQuotaFitsRetention(p.BacklogQuotaMap[meta.BacklogQuotaDestinationStorage], &rp); err != nil {
		return err
	}
	p.Retention = &rp
	return nil
}

// validateRetention applies Pulsar's rules: each limit is >= -1 (-1:
// unlimited), and 0 for one limit only makes sense when both are 0.
func validateRetention(rp *meta.RetentionPolicies) error {
	if rp.RetentionTimeInMinutes < -1 || rp.RetentionSizeInMB < -1 {
		return errorf(http.StatusPreconditionFailed, "invalid retention policy: limits must be >= -1")
	}
	if (rp.RetentionTimeInMinutes == 0) != (rp.RetentionSizeInMB == 0) {
		return errorf(http.StatusPreconditionFailed, "invalid retention policy: setting a single time or size limit to 0 is invalid "+
			"when the other is not 0; use -1 to ignore a limit, or 0 for both to disable retention")
	}
	return nil
}

// checkQuotaFitsRetention refuses, as Pulsar does, a destination_storage
// backlog quota that is not below the retention limits it would contradict.
func checkQuotaFitsRetention(q meta.BacklogQuota, rp *meta.RetentionPolicies) error {
	if rp == nil || (rp.RetentionSizeInMB <= 0 && rp.RetentionTimeInMinutes <= 0) {
		return nil
	}
	if rp.RetentionSizeInMB > 0 && quotaSize(q) >= rp.RetentionSizeInMB<<20 {
		return errorf(http.StatusPreconditionFailed, "backlog quota (%d bytes) exceeds the retention size (%d MB); increase the retention and retry",
			quotaSize(q), rp.RetentionSizeInMB)
	}
	if rp.RetentionTimeInMinutes > 0 && q.LimitTime >= int64(rp.RetentionTimeInMinutes)*60 {
		return errorf(http.StatusPreconditionFailed, "backlog quota (%d s) exceeds the retention time (%d minutes); increase the retention and retry",
			q.LimitTime, rp.RetentionTimeInMinutes)
	}
	return nil
}

func quotaSize(q meta.BacklogQuota) int64 {
	if q.LimitSize != 0 {
		return q.LimitSize
	}
	return q.Limit
}

func getMessageTTL(p *meta.Policies) any {
	if p.MessageTTLInSeconds == nil {
		return nil
	}
	return *p.MessageTTLInSeconds
}

func setMessageTTL(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.MessageTTLInSeconds = nil
		return nil
	}
	var ttl int
	if err := decode(body, &ttl, "the message TTL in seconds"); err != nil {
		return err
	}
	if ttl < 0 {
		return errorf(http.StatusPreconditionFailed, "invalid value for message TTL: %d (must be >= 0)", ttl)
	}
	p.MessageTTLInSeconds = &ttl
	return nil
}

func getDeduplication(p *meta.Policies) any {
	if p.DeduplicationEnabled == nil {
		return nil
	}
	return *p.DeduplicationEnabled
}

// setDeduplication stores the deduplication policy. The broker reloads the
// loaded topics it changes (their clients reconnect).
func setDeduplication(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.DeduplicationEnabled = nil
		return nil
	}
	var enabled bool
	if err := decode(body, &enabled, "true or false"); err != nil {
		return err
	}
	p.DeduplicationEnabled = &enabled
	return nil
}

func getAutoTopicCreation(p *meta.Policies) any {
	if p.AutoTopicCreationOverride == nil {
		return nil
	}
	return p.AutoTopicCreationOverride
}

func setAutoTopicCreation(p *meta.Policies, body []byte, remove bool) error {
	if remove {
		p.AutoTopicCreationOverride = nil
		return nil
	}
	var o meta.AutoTopicCreationOverride
	if err := decode(body, &o, "an auto topic creation override"); err != nil {
		return err
	}
	if err := validateAutoTopicCreation(&o); err != nil {
		return err
	}
	p.AutoTopicCreationOverride = &o
	return nil
}

// validateAutoTopicCreation applies Pulsar's rules: when creation is
// allowed, the type is partitioned (with a partition count) or
// non-partitioned (without one).
func validateAutoTopicCreation(o *meta.AutoTopicCreationOverride) error {
	if !o.AllowAutoTopicCreation {
		return nil
	}
	// Pulsar's words (ValidateResult of its AutoTopicCreationOverride);
	// pulsaradmin's tests compare them.
	const bad = "Invalid configuration for autoTopicCreationOverride. the detail is "
	switch o.TopicType {
	case "partitioned":
		if o.DefaultNumPartitions == nil {
			return errorf(http.StatusPreconditionFailed, "%s[defaultNumPartitions] cannot be null when the type is partitioned.", bad)
		}
		if *o.DefaultNumPartitions < 1 {
			return errorf(http.StatusPreconditionFailed, "%s[defaultNumPartitions] cannot be less than 1 for partition type.", bad)
		}
	case "non-partitioned":
		if o.DefaultNumPartitions != nil {
			return errorf(http.StatusPreconditionFailed, "%s[defaultNumPartitions] is not allowed to be set when the type is non-partition.", bad)
		}
	default:
		return errorf(http.StatusPreconditionFailed, "%s[topicType] must be partitioned or non-partitioned, not %q.", bad, o.TopicType)
	}
	return nil
}

func maxProducers(p *meta.Policies) **int       { return &p.MaxProducersPerTopic }
func maxConsumers(p *meta.Policies) **int       { return &p.MaxConsumersPerTopic }
func maxConsumersPerSub(p *meta.Policies) **int { return &p.MaxConsumersPerSubscription }

func intPolicyGetter(field func(*meta.Policies) **int) policyGetter {
	return func(p *meta.Policies) any {
		if v := *field(p); v != nil {
			return *v
		}
		return nil
	}
}

func intPolicySetter(field func(*meta.Policies) **int, name string) policySetter {
	return func(p *meta.Policies, body []byte, remove bool) error {
		if remove {
			*field(p) = nil
			return nil
		}
		var n int
		if err := decode(body, &n, "a number"); err != nil {
			return err
		}
		if n < 0 {
			return errorf(http.StatusPreconditionFailed, "%s must be 0 or more", name) // Pulsar's words; pulsaradmin compares them
		}
		*field(p) = &n
		return nil
	}
}

var backlogQuotaTypes = []string{meta.BacklogQuotaDestinationStorage, meta.BacklogQuotaMessageAge}

// backlogQuotaType reads ?backlogQuotaType= (default destination_storage).
func backlogQuotaType(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.URL.Query().Get("backlogQuotaType")
	if t == "" {
		return meta.BacklogQuotaDestinationStorage, true
	}
	if !slices.Contains(backlogQuotaTypes, t) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("backlogQuotaType must be one of %v, not %q", backlogQuotaTypes, t))
		return "", false
	}
	return t, true
}

func (s *Server) getBacklogQuotaMap(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, policiesView(p).BacklogQuotaMap)
}

func (s *Server) setBacklogQuota(w http.ResponseWriter, r *http.Request) {
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
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		if typ == meta.BacklogQuotaDestinationStorage {
			if err := checkQuotaFitsRetention(q, p.Retention); err != nil {
				return err
			}
		}
		if p.BacklogQuotaMap == nil {
			p.BacklogQuotaMap = map[string]meta.BacklogQuota{}
		}
		p.BacklogQuotaMap[typ] = q
		return nil
	})
}

var backlogPolicies = []string{meta.BacklogPolicyProducerRequestHold, meta.BacklogPolicyProducerException, meta.BacklogPolicyConsumerBacklogEviction}

// validateBacklogQuota checks the policy name and limits (-1: unlimited) and
// makes limit, Pulsar's deprecated alias, agree with limitSize.
func validateBacklogQuota(q *meta.BacklogQuota) error {
	if !slices.Contains(backlogPolicies, q.Policy) {
		return errorf(http.StatusBadRequest, "backlog quota policy must be one of %v, not %q", backlogPolicies, q.Policy)
	}
	if q.LimitSize == 0 {
		q.LimitSize = q.Limit
	}
	if q.LimitSize < -1 || q.LimitTime < -1 {
		return errorf(http.StatusPreconditionFailed, "backlog quota limits must be >= -1 (-1: unlimited)")
	}
	q.Limit = q.LimitSize
	return nil
}

func (s *Server) removeBacklogQuota(w http.ResponseWriter, r *http.Request) {
	typ, ok := backlogQuotaType(w, r)
	if !ok {
		return
	}
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		delete(p.BacklogQuotaMap, typ)
		return nil
	})
}

// validatePolicies checks the values of the policies a namespace is created with.
func validatePolicies(p *meta.Policies) error {
	if p.SchemaCompatibilityStrategy != "" {
		st, err := schema.ParseStrategy(p.SchemaCompatibilityStrategy)
		if err != nil {
			return errorf(http.StatusBadRequest, "schema_compatibility_strategy: %v", err)
		}
		p.SchemaCompatibilityStrategy = storedStrategy(st)
	}
	if p.Retention != nil {
		if err := validateRetention(p.Retention); err != nil {
			return err
		}
	}
	if p.MessageTTLInSeconds != nil && *p.MessageTTLInSeconds < 0 {
		return errorf(http.StatusPreconditionFailed, "invalid value for message TTL: %d (must be >= 0)", *p.MessageTTLInSeconds)
	}
	for typ, q := range p.BacklogQuotaMap {
		if !slices.Contains(backlogQuotaTypes, typ) {
			return errorf(http.StatusBadRequest, "backlog quota type must be one of %v, not %q", backlogQuotaTypes, typ)
		}
		if err := validateBacklogQuota(&q); err != nil {
			return err
		}
		p.BacklogQuotaMap[typ] = q
	}
	if p.AutoTopicCreationOverride != nil {
		if err := validateAutoTopicCreation(p.AutoTopicCreationOverride); err != nil {
			return err
		}
	}
	for name, v := range map[string]*int{"max_producers_per_topic": p.MaxProducersPerTopic,
		"max_consumers_per_topic": p.MaxConsumersPerTopic, "max_consumers_per_subscription": p.MaxConsumersPerSubscription,
		"max_unacked_messages_per_consumer": p.MaxUnackedMessagesPerConsumer, "max_unacked_messages_per_subscription": p.MaxUnackedMessagesPerSubscription,
		"max_subscriptions_per_topic": p.MaxSubscriptionsPerTopic, "max_topics_per_namespace": p.MaxTopicsPerNamespace,
		"subscription_expiration_time_minutes": p.SubscriptionExpirationTimeMinutes} {
		if v != nil && *v < 0 {
			return errorf(http.StatusPreconditionFailed, "%s must be 0 or more, not %d", name, *v)
		}
	}
	if p.AuthPolicies != nil {
		for role, actions := range p.AuthPolicies.NamespaceAuth {
			if err := validateActions(actions); err != nil {
				return errorf(http.StatusBadRequest, "permissions of %s: %v", role, err)
			}
		}
	}
	return nil
}

// Actions a role can be granted, as Pulsar's AuthAction.
var authActions = []string{"produce", "consume", "functions", "sources", "sinks", "packages"}

func validateActions(actions []string) error {
	for _, a := range actions {
		if !slices.Contains(authActions, a) {
			return errorf(http.StatusBadRequest, "invalid action %q (allowed: %v)", a, authActions)
		}
	}
	return nil
}

// readActions decodes a grant body: a list of actions.
func readActions(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	var actions []string
	if !requireBody(w, r, maxValueBytes, &actions, "a list of actions") {
		return nil, false
	}
	if err := validateActions(actions); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	slices.Sort(actions)
	return slices.Compact(nonNil(actions)), true
}

func authPolicies(p *meta.Policies) *meta.AuthPolicies {
	if p.AuthPolicies == nil {
		p.AuthPolicies = &meta.AuthPolicies{}
	}
	a := p.AuthPolicies
	if a.NamespaceAuth == nil {
		a.NamespaceAuth = map[string][]string{}
	}
	if a.DestinationAuth == nil {
		a.DestinationAuth = map[string]map[string][]string{}
	}
	if a.SubscriptionAuthRoles == nil {
		a.SubscriptionAuthRoles = map[string][]string{}
	}
	return a
}

func (s *Server) getPermissions(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, authPolicies(&p).NamespaceAuth)
}

func (s *Server) grantPermission(w http.ResponseWriter, r *http.Request) {
	actions, ok := readActions(w, r)
	if !ok {
		return
	}
	role := r.PathValue("role")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		authPolicies(p).NamespaceAuth[role] = actions
		return nil
	})
}

func (s *Server) revokePermission(w http.ResponseWriter, r *http.Request) {
	role := r.PathValue("role")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		delete(authPolicies(p).NamespaceAuth, role)
		return nil
	})
}

// Topic-level grants live in the namespace's auth_policies.destination_auth.

func (s *Server) getTopicPermissions(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	p, err := s.meta.Namespace(r.Context(), t.Namespace)
	if err != nil {
		s.metaError(w, err, "namespace "+t.Namespace.String())
		return
	}
	a := authPolicies(&p)
	out := map[string][]string{}
	for role, actions := range a.NamespaceAuth {
		out[role] = actions
	}
	for role, actions := range a.DestinationAuth[t.String()] {
		merged := append(slices.Clone(out[role]), actions...)
		sort.Strings(merged)
		out[role] = slices.Compact(merged)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) grantTopicPermission(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	actions, ok := readActions(w, r)
	if !ok {
		return
	}
	role := r.PathValue("role")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		a := authPolicies(p)
		if a.DestinationAuth[t.String()] == nil {
			a.DestinationAuth[t.String()] = map[string][]string{}
		}
		a.DestinationAuth[t.String()][role] = actions
		return nil
	})
}

func (s *Server) revokeTopicPermission(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	role := r.PathValue("role")
	s.updatePolicies(w, r, func(p *meta.Policies) error {
		a := authPolicies(p)
		if _, ok := a.DestinationAuth[t.String()][role]; !ok {
			return errorf(http.StatusPreconditionFailed, "permissions of %s are not set at the topic level of %s", role, t)
		}
		delete(a.DestinationAuth[t.String()], role)
		if len(a.DestinationAuth[t.String()]) == 0 {
			delete(a.DestinationAuth, t.String())
		}
		return nil
	})
}

func (s *Server) getReplication(w http.ResponseWriter, r *http.Request) {
	p, ok := s.namespacePolicies(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, nonNil(p.ReplicationClusters))
}
