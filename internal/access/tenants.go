package access

import (
	"context"
	"errors"
	"slices"
	"strings"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// adminRoleSuffix names the role people of a tenant's groups get at login:
// "<tenant>.admin". Associations may not use it.
const adminRoleSuffix = "admin"

func loginRole(tenant string) string { return tenant + "." + adminRoleSuffix }

// CreateTenant creates the tenant, its default namespace and the record of
// the groups that administer it; on any failure nothing stays created.
func (s *Service) CreateTenant(ctx context.Context, req *accessv1.CreateTenantRequest) (*accessv1.Tenant, error) {
	p := caller(ctx)
	if !s.auth.IsSuperuser(p.Role) {
		return nil, refuse(ctx, ReasonForbidden, status.Errorf(codes.PermissionDenied, "role %q is not a superuser; only the platform team creates tenants", p.Role))
	}
	if err := naming.ValidateEntity("tenant", req.GetTenant()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if strings.Contains(req.GetTenant(), ".") {
		return nil, status.Error(codes.InvalidArgument, "tenant names may not contain '.', which separates the tenant from a role name")
	}
	groups := cleanList(req.GetGroups())
	if len(groups) == 0 {
		return nil, status.Error(codes.InvalidArgument, "at least one group must administer the tenant")
	}
	nsName := req.GetDefaultNamespace()
	if nsName == "" {
		nsName = "default"
	}
	ns := naming.Namespace{Tenant: req.GetTenant(), Name: nsName}
	if err := ns.Validate(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tenant := req.GetTenant()
	info := meta.TenantInfo{AdminRoles: []string{loginRole(tenant)}, AllowedClusters: []string{s.cfg.ClusterName}}
	if err := s.meta.CreateTenant(ctx, tenant, info); err != nil {
		if errors.Is(err, meta.ErrExists) {
			return nil, status.Errorf(codes.AlreadyExists, "tenant %q already exists", tenant)
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	rec := meta.AccessTenant{Groups: groups, CreatedBy: p.Role, CreatedAt: s.cfg.Now().UTC()}
	err := s.meta.CreateNamespace(ctx, ns, meta.Policies{})
	if err == nil {
		err = s.meta.PutAccessTenant(ctx, tenant, rec)
		if err != nil {
			s.meta.DeleteNamespace(ctx, ns)
		}
	}
	if err != nil {
		s.meta.DeleteTenant(ctx, tenant)
		return nil, status.Errorf(codes.Internal, "create tenant %q: %v", tenant, err)
	}
	s.audit(ctx, p.Role, "create-tenant", tenant, "groups="+strings.Join(groups, ",")+" namespace="+ns.String())
	return tenantMessage(tenant, info, rec), nil
}

func tenantMessage(name string, info meta.TenantInfo, rec meta.AccessTenant) *accessv1.Tenant {
	t := &accessv1.Tenant{Name: name, Groups: rec.Groups, AdminRoles: info.AdminRoles, CreatedBy: rec.CreatedBy}
	if !rec.CreatedAt.IsZero() {
		t.CreatedAt = timestamppb.New(rec.CreatedAt)
	}
	return t
}

// ListTenants lists the tenants the caller administers.
func (s *Service) ListTenants(ctx context.Context, _ *accessv1.ListTenantsRequest) (*accessv1.ListTenantsResponse, error) {
	names, err := s.meta.Tenants(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	role := caller(ctx).Role
	resp := &accessv1.ListTenantsResponse{}
	for _, name := range names {
		info, err := s.meta.Tenant(ctx, name)
		if err != nil {
			continue // deleted meanwhile
		}
		if !s.auth.IsSuperuser(role) && !slices.Contains(info.AdminRoles, role) {
			continue
		}
		rec, _ := s.meta.AccessTenant(ctx, name) // tenants made with the admin API have none
		resp.Tenants = append(resp.Tenants, tenantMessage(name, info, rec))
	}
	return resp, nil
}

// Login gives a member of one of the tenant's groups a token of the
// tenant's admin role.
func (s *Service) Login(ctx context.Context, req *accessv1.LoginRequest) (*accessv1.Credentials, error) {
	ident, iss := claimedOIDC(req.GetIdToken())
	claim(ctx, ident, iss)
	if s.cfg.Login == nil {
		return nil, refuse(ctx, ReasonNotConfigured, status.Error(codes.FailedPrecondition, "login is not configured on this server (no OIDC issuer and client id)"))
	}
	tenant := req.GetTenant()
	rec, err := s.meta.AccessTenant(ctx, tenant)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, refuse(ctx, ReasonUnknownTenant, status.Errorf(codes.NotFound, "tenant %q is not managed by the access control plane", tenant))
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	id, err := s.cfg.Login.Verify(ctx, req.GetIdToken())
	if err != nil {
		code := codes.Unauthenticated
		if errors.Is(err, identity.ErrIssuerUnavailable) {
			code = codes.Unavailable
		}
		return nil, refuse(ctx, identityReason(err), status.Error(code, err.Error()))
	}
	who := id.Subject
	if id.Email != "" {
		who = id.Email
	}
	proven(ctx, who, id.Issuer)
	if !slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(rec.Groups, g) }) {
		return nil, refuse(ctx, ReasonNotMember, status.Errorf(codes.PermissionDenied, "%s is not a member of any group administering tenant %q", who, tenant))
	}
	role := loginRole(tenant)
	tok, exp, err := s.issue(role, s.cfg.LoginTTL, id.Key())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, who, "login", tenant, "role="+role)
	return &accessv1.Credentials{Token: tok, Role: role, Tenant: tenant, ExpiresAt: timestamppb.New(exp)}, nil
}

// WhoAmI describes the caller.
func (s *Service) WhoAmI(ctx context.Context, _ *accessv1.WhoAmIRequest) (*accessv1.WhoAmIResponse, error) {
	p := caller(ctx)
	resp := &accessv1.WhoAmIResponse{Role: p.Role, Superuser: s.auth.IsSuperuser(p.Role)}
	if !p.ExpiresAt.IsZero() {
		resp.ExpiresAt = timestamppb.New(p.ExpiresAt)
	}
	tenants, err := s.ListTenants(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, t := range tenants.Tenants {
		resp.AdminOf = append(resp.AdminOf, t.Name)
	}
	return resp, nil
}

// ListAudit lists changes the caller may see, newest first.
func (s *Service) ListAudit(ctx context.Context, req *accessv1.ListAuditRequest) (*accessv1.ListAuditResponse, error) {
	role := caller(ctx).Role
	if req.GetTenant() != "" {
		if err := s.requireTenantAdmin(ctx, req.GetTenant()); err != nil {
			return nil, err
		}
	}
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = 100
	}
	super := s.auth.IsSuperuser(role)
	admins := map[string]bool{}
	recs, err := s.meta.Audit(ctx, limit, func(r meta.AuditRecord) bool {
		if req.GetTenant() != "" {
			return r.Tenant == req.GetTenant()
		}
		if super {
			return true
		}
		if r.Tenant == "" {
			return false
		}
		ok, seen := admins[r.Tenant]
		if !seen {
			ok, _ = s.auth.IsTenantAdmin(ctx, role, r.Tenant)
			admins[r.Tenant] = ok
		}
		return ok
	})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &accessv1.ListAuditResponse{}
	for _, r := range recs {
		resp.Records = append(resp.Records, &accessv1.AuditRecord{
			Time: timestamppb.New(r.Time), Actor: r.Actor, Action: r.Action, Tenant: r.Tenant, Detail: r.Detail,
			Reason: r.Reason, Identity: r.Identity, Issuer: r.Issuer, Role: r.Role, Source: r.Source, Dropped: r.Dropped})
	}
	return resp, nil
}

// cleanList trims, drops empty entries and duplicates, keeps order.
func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
