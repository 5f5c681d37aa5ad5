package access

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var (
	roleName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// An IAM role ARN, path allowed: arn:aws:iam::123456789012:role/path/name.
	roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
)

// FullRole returns the tenant-prefixed role for a role name given with or
// without the prefix. A prefix naming another tenant is refused, so a
// tenant can never mint another tenant's role. Errors are gRPC statuses.
func FullRole(tenant, role string) (string, error) {
	name := role
	if prefix, rest, ok := strings.Cut(role, "."); ok {
		if prefix != tenant {
			return "", status.Errorf(codes.PermissionDenied, "role %q has the prefix of another tenant; roles of tenant %q are %q", role, tenant, tenant+".<name>")
		}
		name = rest
	}
	if !roleName.MatchString(name) {
		return "", status.Errorf(codes.InvalidArgument, "invalid role name %q: use 1-64 letters, digits, '_' or '-'", name)
	}
	if name == adminRoleSuffix {
		return "", status.Errorf(codes.InvalidArgument, "role name %q is reserved for the tenant's administrators", name)
	}
	return tenant + "." + name, nil
}

// identityOf parses the identity of an association request.
func (s *Service) identityOf(ctx context.Context, id, issuer string) (identity.Identity, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return identity.Identity{}, status.Error(codes.InvalidArgument, "identity is required: an AWS IAM role ARN or an OIDC subject")
	}
	if strings.HasPrefix(id, "arn:") {
		if !roleARN.MatchString(id) {
			return identity.Identity{}, status.Errorf(codes.InvalidArgument, "invalid AWS IAM role ARN %q: want arn:aws:iam::ACCOUNT:role/NAME", id)
		}
		return identity.Identity{Kind: identity.KindAWS, Subject: id}, nil
	}
	if issuer == "" {
		if len(s.cfg.TrustedIssuers) != 1 {
			return identity.Identity{}, status.Error(codes.InvalidArgument, "issuer is required: the server trusts several OIDC issuers")
		}
		issuer = s.cfg.TrustedIssuers[0]
	}
	if !slices.Contains(s.cfg.TrustedIssuers, issuer) {
		return identity.Identity{}, refuse(ctx, ReasonUntrustedIssuer, status.Errorf(codes.InvalidArgument, "issuer %q is not trusted by this server", clip(issuer, 200)))
	}
	return identity.Identity{Kind: identity.KindOIDC, Issuer: issuer, Subject: id}, nil
}

// namespacesOf resolves the namespaces of a grant within tenant.
func (s *Service) namespacesOf(ctx context.Context, tenant string, names []string) ([]naming.Namespace, error) {
	if len(names) == 0 {
		names = []string{"default"}
	}
	var out []naming.Namespace
	for _, n := range cleanList(names) {
		if t, rest, ok := strings.Cut(n, "/"); ok {
			if t != tenant {
				return nil, status.Errorf(codes.PermissionDenied, "namespace %q is not in tenant %q", n, tenant)
			}
			n = rest
		}
		ns := naming.Namespace{Tenant: tenant, Name: n}
		if err := ns.Validate(); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		ok, err := s.meta.NamespaceExists(ctx, ns)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if !ok {
			return nil, status.Errorf(codes.NotFound, "namespace %q does not exist", ns)
		}
		out = append(out, ns)
	}
	return out, nil
}

func validActions(actions []string) ([]string, error) {
	out := cleanList(actions)
	for _, a := range out {
		switch a {
		case auth.ActionProduce, auth.ActionConsume, auth.ActionFunctions:
		default:
			return nil, status.Errorf(codes.InvalidArgument, "invalid action %q: want produce, consume or functions", a)
		}
	}
	return out, nil
}

// binding checks that the caller administers tenant and resolves the role
// and identity an association request names.
func (s *Service) binding(ctx context.Context, tenant, role, id, issuer string) (string, identity.Identity, error) {
	if err := s.requireTenantAdmin(ctx, tenant); err != nil {
		return "", identity.Identity{}, err
	}
	full, err := FullRole(tenant, role)
	if err != nil {
		return "", identity.Identity{}, refuse(ctx, roleReason(err), err)
	}
	ident, err := s.identityOf(ctx, id, issuer)
	return full, ident, err
}

// AssociateRole binds an identity to a tenant-prefixed role and grants the
// role actions on namespaces. Everything is checked before anything is
// written.
func (s *Service) AssociateRole(ctx context.Context, req *accessv1.AssociateRoleRequest) (*accessv1.Association, error) {
	tenant := req.GetTenant()
	role, id, err := s.binding(ctx, tenant, req.GetRole(), req.GetIdentity(), req.GetIssuer())
	if err != nil {
		return nil, err
	}
	actions, err := validActions(req.GetActions())
	if err != nil {
		return nil, err
	}
	var nss []naming.Namespace
	if len(actions) > 0 {
		if nss, err = s.namespacesOf(ctx, tenant, req.GetNamespaces()); err != nil {
			return nil, err
		}
	} else if len(req.GetNamespaces()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "namespaces given without actions to grant on them")
	}
	if req.GetDeliverToVault() && s.vlt == nil {
		return nil, status.Error(codes.FailedPrecondition, "Vault delivery is not configured on this server")
	}
	a := meta.Association{
		Tenant: tenant, Role: role, IdentityKind: string(id.Kind), Issuer: id.Issuer, Subject: id.Subject,
		IdentityKey: id.Key(), Actions: actions, CreatedBy: caller(ctx).Role, CreatedAt: s.cfg.Now().UTC(),
	}
	for _, ns := range nss {
		a.Namespaces = append(a.Namespaces, ns.String())
	}
	if req.GetDeliverToVault() {
		a.VaultPath = s.vlt.pathFor(a)
	}
	for _, ns := range nss {
		if err := s.grant(ctx, ns, role, actions); err != nil {
			return nil, status.Errorf(codes.Internal, "grant %s on %s: %v", role, ns, err)
		}
	}
	if err := s.meta.PutAssociation(ctx, a); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, caller(ctx).Role, "associate-role", tenant,
		fmt.Sprintf("identity=%s role=%s actions=%s namespaces=%s vault=%t", a.IdentityKey, role,
			strings.Join(actions, ","), strings.Join(a.Namespaces, ","), a.VaultPath != ""))
	if a.VaultPath != "" {
		s.vlt.wake()
	}
	return associationMessage(a), nil
}

// grant adds actions to role's grant on ns.
func (s *Service) grant(ctx context.Context, ns naming.Namespace, role string, actions []string) error {
	return s.meta.UpdateNamespace(ctx, ns, func(p *meta.Policies) error {
		if p.AuthPolicies == nil {
			p.AuthPolicies = &meta.AuthPolicies{}
		}
		if p.AuthPolicies.NamespaceAuth == nil {
			p.AuthPolicies.NamespaceAuth = map[string][]string{}
		}
		have := p.AuthPolicies.NamespaceAuth[role]
		for _, a := range actions {
			if !slices.Contains(have, a) {
				have = append(have, a)
			}
		}
		slices.Sort(have)
		p.AuthPolicies.NamespaceAuth[role] = have
		return nil
	})
}

func associationMessage(a meta.Association) *accessv1.Association {
	return &accessv1.Association{
		Tenant: a.Tenant, Role: a.Role, IdentityKind: a.IdentityKind, Issuer: a.Issuer, Subject: a.Subject,
		Actions: a.Actions, Namespaces: a.Namespaces, VaultPath: a.VaultPath, CreatedBy: a.CreatedBy,
		CreatedAt: timestamppb.New(a.CreatedAt),
	}
}

// RemoveAssociation unbinds an identity. When the role has no identity
// left, its namespace grants go too.
func (s *Service) RemoveAssociation(ctx context.Context, req *accessv1.RemoveAssociationRequest) (*accessv1.RemoveAssociationResponse, error) {
	tenant := req.GetTenant()
	role, id, err := s.binding(ctx, tenant, req.GetRole(), req.GetIdentity(), req.GetIssuer())
	if err != nil {
		return nil, err
	}
	a, err := s.meta.Association(ctx, tenant, role, id.Key())
	if errors.Is(err, meta.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no association of %s with role %s", id.Key(), role)
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := s.meta.DeleteAssociation(ctx, tenant, role, id.Key()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	all, err := s.meta.Associations(ctx, tenant)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if !slices.ContainsFunc(all, func(o meta.Association) bool { return o.Role == role }) {
		for _, n := range a.Namespaces {
			ns, err := naming.ParseNamespace(n)
			if err != nil {
				continue
			}
			s.meta.UpdateNamespace(ctx, ns, func(p *meta.Policies) error {
				if p.AuthPolicies != nil {
					delete(p.AuthPolicies.NamespaceAuth, role)
				}
				return nil
			})
		}
	}
	s.vlt.forget(a)
	s.audit(ctx, caller(ctx).Role, "remove-association", tenant, "identity="+id.Key()+" role="+role)
	return &accessv1.RemoveAssociationResponse{}, nil
}

// ListRoles lists a tenant's associations.
func (s *Service) ListRoles(ctx context.Context, req *accessv1.ListRolesRequest) (*accessv1.ListRolesResponse, error) {
	if err := s.requireTenantAdmin(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	all, err := s.meta.Associations(ctx, req.GetTenant())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &accessv1.ListRolesResponse{}
	for _, a := range all {
		resp.Associations = append(resp.Associations, associationMessage(a))
	}
	return resp, nil
}

// GetCredentials verifies a workload's identity proof and issues a token of
// the role it is associated with in the tenant. Every refusal is audited
// (by the guard) with its reason class and the identity claimed.
func (s *Service) GetCredentials(ctx context.Context, req *accessv1.GetCredentialsRequest) (*accessv1.Credentials, error) {
	tenant := req.GetTenant()
	var id identity.Identity
	var err error
	switch proof := req.GetProof().(type) {
	case *accessv1.GetCredentialsRequest_OidcToken:
		ident, iss := claimedOIDC(proof.OidcToken)
		claim(ctx, ident, iss)
	case *accessv1.GetCredentialsRequest_Aws:
		claim(ctx, claimedAWS(proof.Aws), "aws")
	}
	if tenant == "" {
		return nil, refuse(ctx, ReasonInvalidRequest, status.Error(codes.InvalidArgument, "tenant is required"))
	}
	role, err := FullRole(tenant, req.GetRole())
	if err != nil {
		return nil, refuse(ctx, roleReason(err), err)
	}
	switch proof := req.GetProof().(type) {
	case *accessv1.GetCredentialsRequest_OidcToken:
		if s.cfg.Workloads == nil {
			return nil, refuse(ctx, ReasonNotConfigured, status.Error(codes.FailedPrecondition, "no OIDC issuer is trusted by this server"))
		}
		id, err = s.cfg.Workloads.Verify(ctx, proof.OidcToken)
	case *accessv1.GetCredentialsRequest_Aws:
		id, err = s.aws.verify(ctx, proof.Aws)
	default:
		return nil, refuse(ctx, ReasonInvalidRequest, status.Error(codes.InvalidArgument, "an identity proof is required: an OIDC token or a signed AWS request"))
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, refuse(ctx, identityReason(err), err)
		}
		return nil, refuse(ctx, identityReason(err), status.Error(identityCode(err), err.Error()))
	}
	proven(ctx, id.Key(), id.Issuer)
	if _, err := s.meta.AccessTenant(ctx, tenant); errors.Is(err, meta.ErrNotFound) {
		if _, terr := s.meta.Tenant(ctx, tenant); errors.Is(terr, meta.ErrNotFound) {
			return nil, refuse(ctx, ReasonUnknownTenant, status.Errorf(codes.NotFound, "tenant %q does not exist", tenant))
		}
	}
	if _, err := s.meta.Association(ctx, tenant, role, id.Key()); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return nil, refuse(ctx, ReasonNoAssociation, status.Errorf(codes.PermissionDenied, "identity %s is not associated with role %s", id.Key(), role))
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	tok, exp, err := s.issue(role, s.cfg.TokenTTL, id.Key())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, id.Key(), "issue-credentials", tenant, "role="+role)
	return &accessv1.Credentials{Token: tok, Role: role, Tenant: tenant, ExpiresAt: timestamppb.New(exp)}, nil
}

// roleReason classifies a refusal of FullRole.
func roleReason(err error) string {
	if status.Code(err) == codes.PermissionDenied {
		return ReasonForeignRole
	}
	return ReasonInvalidRequest
}

// claimedOIDC is the identity an OIDC token claims, unverified, in the
// form of identity keys ("oidc:<issuer>#<subject>").
func claimedOIDC(raw string) (ident, issuer string) {
	iss, sub := identity.Claimed(raw)
	if iss == "" && sub == "" {
		return "", ""
	}
	return "oidc:" + iss + "#" + sub, iss
}

// claimedAWS is the access key id a signed request names (not a secret:
// AWS logs it too), "aws-key:<id>".
func claimedAWS(req *accessv1.AWSSignedRequest) string {
	for k, v := range req.GetHeaders() {
		if !strings.EqualFold(k, "Authorization") || len(v.GetValues()) == 0 {
			continue
		}
		_, cred, ok := strings.Cut(v.GetValues()[0], "Credential=")
		if !ok {
			return ""
		}
		key, _, _ := strings.Cut(cred, "/")
		return "aws-key:" + clip(key, 128)
	}
	return ""
}

func identityCode(err error) codes.Code {
	switch {
	case errors.Is(err, identity.ErrIssuerUnavailable):
		return codes.Unavailable
	case errors.Is(err, identity.ErrUntrustedIssuer), errors.Is(err, identity.ErrExpired),
		errors.Is(err, identity.ErrAudience), errors.Is(err, identity.ErrReplay), errors.Is(err, identity.ErrInvalid):
		return codes.Unauthenticated
	}
	return codes.Unavailable // the identity provider or STS could not be reached
}
