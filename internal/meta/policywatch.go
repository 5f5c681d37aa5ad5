package meta

import (
	"context"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
)

// PolicyChangeKind says which policy record a PolicyChange is about.
type PolicyChangeKind int

// Kinds of policy changes.
const (
	// PolicyReset: changes may have been missed (the store's watch reset);
	// every policy read before may be stale.
	PolicyReset PolicyChangeKind = iota
	// TenantChanged: a tenant's record (its admin roles) was written or deleted.
	TenantChanged
	// NamespaceChanged: a namespace's policies were written or deleted.
	NamespaceChanged
	// TopicPoliciesChanged: a topic's policies were written or deleted.
	TopicPoliciesChanged
)

// PolicyChange is one change of tenant, namespace or topic policies, as
// WatchPolicies delivers it: typed, so that no package outside meta needs
// the key layout.
type PolicyChange struct {
	Kind      PolicyChangeKind
	Tenant    string           // TenantChanged, NamespaceChanged, TopicPoliciesChanged
	Namespace naming.Namespace // NamespaceChanged, TopicPoliciesChanged
	// Topic is the topic whose policies changed (a partitioned topic's
	// record covers all its partitions; Topic is then the partitioned one).
	Topic    naming.Topic
	Deleted  bool
	Revision int64
}

// WatchPolicies delivers changes of tenants, namespace policies and topic
// policies until ctx ends, then closes the channel. A PolicyReset is
// delivered whenever the underlying watch may have missed changes; the
// receiver must then forget what it cached. The channel is unbuffered: a
// change is handed over only once the previous one was taken.
func (r *Resources) WatchPolicies(ctx context.Context) <-chan PolicyChange {
	out := make(chan PolicyChange)
	events := r.Store.Watch(ctx, "/admin/")
	go func() {
		defer close(out)
		for ev := range events {
			ch, ok := policyChange(ev)
			if !ok {
				continue
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				// Drain so a store that blocks on a full channel is released.
				for range events {
				}
				return
			}
		}
	}()
	return out
}

// policyChange translates a store event into a policy change; false for
// records that are not policies (clusters, partitioned-topic metadata).
func policyChange(ev Event) (PolicyChange, bool) {
	c := PolicyChange{Revision: ev.Revision, Deleted: ev.Type == EventDelete}
	key := ev.KV.Key
	switch {
	case ev.Type == EventReset:
		c.Kind = PolicyReset
		return c, true
	case strings.HasPrefix(key, TopicPoliciesPrefix):
		parts := strings.Split(strings.TrimPrefix(key, TopicPoliciesPrefix), "/")
		if len(parts) != 4 {
			return c, false
		}
		c.Kind = TopicPoliciesChanged
		c.Namespace = naming.Namespace{Tenant: parts[0], Name: parts[1]}
		c.Tenant = parts[0]
		c.Topic = naming.Topic{Domain: parts[2], Namespace: c.Namespace, Local: parts[3]}
		return c, true
	case strings.HasPrefix(key, policiesPrefix):
		parts := strings.Split(strings.TrimPrefix(key, policiesPrefix), "/")
		switch len(parts) {
		case 1:
			c.Kind = TenantChanged
			c.Tenant = parts[0]
		case 2:
			c.Kind = NamespaceChanged
			c.Tenant = parts[0]
			c.Namespace = naming.Namespace{Tenant: parts[0], Name: parts[1]}
		default:
			return c, false
		}
		return c, true
	}
	return c, false
}
