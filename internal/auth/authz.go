package auth

import (
	"context"
	"errors"
	"slices"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// Actions a namespace or topic grant can hold.
const (
	ActionProduce   = "produce"
	ActionConsume   = "consume"
	ActionFunctions = "functions"
)

// PolicyReader reads tenants and namespace policies. meta.PolicyCache (the
// broker's cache, kept fresh by a watch) and meta.Resources (a read per
// call) both are one; a missing record is meta.ErrNotFound.
type PolicyReader interface {
	Tenant(ctx context.Context, name string) (meta.TenantInfo, error)
	Namespace(ctx context.Context, ns naming.Namespace) (meta.Policies, error)
}

// Grants are read through Config.Policies on each check: checks happen on
// lookups, producer and consumer creation and admin calls, never per message.

// IsSuperuser reports whether role may do everything.
func (s *Service) IsSuperuser(role string) bool {
	return s == nil || s.superusers[role]
}

// IsTenantAdmin reports whether role administers tenant: a superuser, or one
// of the tenant's admin roles. A missing tenant has no admins.
func (s *Service) IsTenantAdmin(ctx context.Context, role, tenant string) (bool, error) {
	if s.IsSuperuser(role) {
		return true, nil
	}
	ti, err := s.cfg.Policies.Tenant(ctx, tenant)
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return slices.Contains(ti.AdminRoles, role), nil
}

// CanProduce reports whether role may publish to t.
func (s *Service) CanProduce(ctx context.Context, role string, t naming.Topic) (bool, error) {
	return s.allowTopic(ctx, role, t, ActionProduce, "")
}

// CanConsume reports whether role may subscribe to t as subscription (""
// for operations on the topic's subscriptions in general).
func (s *Service) CanConsume(ctx context.Context, role string, t naming.Topic, subscription string) (bool, error) {
	return s.allowTopic(ctx, role, t, ActionConsume, subscription)
}

// CanLookup reports whether role may look t up or read its metadata and
// stats: anyone who may produce to or consume from it.
func (s *Service) CanLookup(ctx context.Context, role string, t naming.Topic) (bool, error) {
	ok, err := s.allowTopic(ctx, role, t, ActionProduce, "")
	if ok || err != nil {
		return ok, err
	}
	return s.allowTopic(ctx, role, t, ActionConsume, "")
}

// CanListTopics reports whether role may list ns's topics: its tenant's
// admins and roles with a produce or consume grant on the whole namespace.
func (s *Service) CanListTopics(ctx context.Context, role string, ns naming.Namespace) (bool, error) {
	if s == nil {
		return true, nil
	}
	if ok, err := s.IsTenantAdmin(ctx, role, ns.Tenant); ok || err != nil {
		return ok, err
	}
	p, err := s.namespacePolicies(ctx, ns)
	if err != nil || p.AuthPolicies == nil {
		return false, err
	}
	grants := p.AuthPolicies.NamespaceAuth[role]
	return slices.Contains(grants, ActionProduce) || slices.Contains(grants, ActionConsume), nil
}

// CanManageFunctions reports whether role may manage ns's functions: its
// tenant's admins and roles granted the functions action on the namespace.
func (s *Service) CanManageFunctions(ctx context.Context, role string, ns naming.Namespace) (bool, error) {
	if s == nil {
		return true, nil
	}
	if ok, err := s.IsTenantAdmin(ctx, role, ns.Tenant); ok || err != nil {
		return ok, err
	}
	p, err := s.namespacePolicies(ctx, ns)
	if err != nil || p.AuthPolicies == nil {
		return false, err
	}
	return slices.Contains(p.AuthPolicies.NamespaceAuth[role], ActionFunctions), nil
}

func (s *Service) allowTopic(ctx context.Context, role string, t naming.Topic, action, subscription string) (bool, error) {
	if s == nil {
		return true, nil
	}
	if ok, err := s.IsTenantAdmin(ctx, role, t.Namespace.Tenant); ok || err != nil {
		return ok, err
	}
	p, err := s.namespacePolicies(ctx, t.Namespace)
	if err != nil || p.AuthPolicies == nil {
		return false, err
	}
	a := p.AuthPolicies
	if action == ActionConsume && subscription != "" {
		// A subscription restricted to some roles admits only those.
		if roles := a.SubscriptionAuthRoles[subscription]; len(roles) > 0 && !slices.Contains(roles, role) {
			return false, nil
		}
	}
	if slices.Contains(a.NamespaceAuth[role], action) {
		return true, nil
	}
	// Grants on a partitioned topic cover its partitions.
	for _, name := range []naming.Topic{t, t.Partitioned()} {
		if slices.Contains(a.DestinationAuth[name.String()][role], action) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Service) namespacePolicies(ctx context.Context, ns naming.Namespace) (meta.Policies, error) {
	p, err := s.cfg.Policies.Namespace(ctx, ns)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Policies{}, nil
	}
	return p, err
}
