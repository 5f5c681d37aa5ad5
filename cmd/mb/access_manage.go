package main

// `mb access` commands that manage tenants and roles and show who is who.

import (
	"fmt"
	"strconv"
	"strings"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/spf13/cobra"
)

func newAccessCreateTenantCommand(o *accessOptions) *cobra.Command {
	var tenant, groups, ns string
	cmd := &cobra.Command{
		Use:   "create-tenant",
		Short: "Create a tenant administered by identity-provider groups (platform superusers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				t, err := call(cmd, c, c.api.CreateTenant, &accessv1.CreateTenantRequest{Tenant: tenant, Groups: splitList(groups), DefaultNamespace: ns})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), t, func(p *printer) error { return printTenants(p, t) })
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name")
	cmd.Flags().StringVar(&groups, "groups", "", "comma-separated groups whose members administer the tenant")
	cmd.Flags().StringVar(&ns, "namespace", "default", "namespace created with the tenant")
	cmd.MarkFlagRequired("tenant")
	cmd.MarkFlagRequired("groups")
	return cmd
}

func printTenants(p *printer, ts ...*accessv1.Tenant) error {
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, []string{t.GetName(), strings.Join(t.GetGroups(), ","), strings.Join(t.GetAdminRoles(), ","), t.GetCreatedBy(), formatTime(t.GetCreatedAt())})
	}
	return p.table([]string{"TENANT", "GROUPS", "ADMIN ROLES", "CREATED BY", "CREATED"}, rows)
}

func newAccessListTenantsCommand(o *accessOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list-tenants",
		Short: "List the tenants you administer (all of them for superusers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				resp, err := call(cmd, c, c.api.ListTenants, &accessv1.ListTenantsRequest{})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), resp, func(p *printer) error { return printTenants(p, resp.GetTenants()...) })
			})
		},
	}
}

// identityFlags are the flags naming an identity and a role.
type identityFlags struct {
	tenant, identity, issuer, role string
}

func (f *identityFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "tenant")
	cmd.Flags().StringVar(&f.identity, "identity", "", "AWS IAM role ARN, or the OIDC subject of a trusted issuer (e.g. system:serviceaccount:NS:NAME)")
	cmd.Flags().StringVar(&f.issuer, "issuer", "", "OIDC issuer of --identity (needed when the server trusts several)")
	cmd.Flags().StringVar(&f.role, "role", "", "role name; the broker role is <tenant>.<role>")
	for _, name := range []string{"tenant", "identity", "role"} {
		cmd.MarkFlagRequired(name)
	}
}

func newAccessAssociateRoleCommand(o *accessOptions) *cobra.Command {
	var f identityFlags
	var actions string
	var namespaces []string
	var vault bool
	cmd := &cobra.Command{
		Use:   "associate-role",
		Short: "Bind a workload identity to a tenant role and grant the role actions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				a, err := call(cmd, c, c.api.AssociateRole, &accessv1.AssociateRoleRequest{
					Tenant: f.tenant, Identity: f.identity, Issuer: f.issuer, Role: f.role,
					Actions: splitList(actions), Namespaces: namespaces, DeliverToVault: vault,
				})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), a, func(p *printer) error { return printAssociations(p, a) })
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&actions, "actions", "", "comma-separated actions to grant: produce, consume, functions")
	cmd.Flags().StringSliceVar(&namespaces, "namespace", nil, "namespace of the tenant the actions apply to (repeatable; default: default)")
	cmd.Flags().BoolVar(&vault, "vault", false, "keep a fresh token for the identity in the server's Vault")
	return cmd
}

func printAssociations(p *printer, as ...*accessv1.Association) error {
	var rows [][]string
	for _, a := range as {
		id := a.GetSubject()
		if a.GetIssuer() != "" {
			id = a.GetIssuer() + "#" + id
		}
		rows = append(rows, []string{a.GetRole(), a.GetIdentityKind(), id, strings.Join(a.GetActions(), ","), strings.Join(a.GetNamespaces(), ","), a.GetVaultPath()})
	}
	return p.table([]string{"ROLE", "KIND", "IDENTITY", "ACTIONS", "NAMESPACES", "VAULT PATH"}, rows)
}

func newAccessRemoveRoleCommand(o *accessOptions) *cobra.Command {
	var f identityFlags
	cmd := &cobra.Command{
		Use:     "remove-role",
		Aliases: []string{"remove-association"},
		Short:   "Unbind a workload identity from a tenant role",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				_, err := call(cmd, c, c.api.RemoveAssociation, &accessv1.RemoveAssociationRequest{
					Tenant: f.tenant, Identity: f.identity, Issuer: f.issuer, Role: f.role})
				return err
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newAccessListRolesCommand(o *accessOptions) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "list-roles",
		Short: "List a tenant's role associations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				resp, err := call(cmd, c, c.api.ListRoles, &accessv1.ListRolesRequest{Tenant: tenant})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), resp, func(p *printer) error { return printAssociations(p, resp.GetAssociations()...) })
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant")
	cmd.MarkFlagRequired("tenant")
	return cmd
}

func newAccessWhoAmICommand(o *accessOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the role of your token and the tenants it administers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				w, err := call(cmd, c, c.api.WhoAmI, &accessv1.WhoAmIRequest{})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), w, func(p *printer) error {
					exp := formatTime(w.GetExpiresAt())
					if exp == "" {
						exp = "never"
					}
					return p.table(nil, [][]string{
						{"role", w.GetRole()},
						{"superuser", strconv.FormatBool(w.GetSuperuser())},
						{"admin of", strings.Join(w.GetAdminOf(), ",")},
						{"expires", exp},
					})
				})
			})
		},
	}
}

func newAccessAuditCommand(o *accessOptions) *cobra.Command {
	var tenant string
	var limit int32
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List control-plane changes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(o, func(c *accessClient) error {
				resp, err := call(cmd, c, c.api.ListAudit, &accessv1.ListAuditRequest{Tenant: tenant, Limit: limit})
				if err != nil {
					return err
				}
				return o.printMessage(cmd.OutOrStdout(), resp, func(p *printer) error {
					var rows [][]string
					for _, r := range resp.GetRecords() {
						rows = append(rows, []string{formatTime(r.GetTime()), r.GetActor(), r.GetAction(), r.GetTenant(),
							r.GetReason(), r.GetSource(), auditDetail(r)})
					}
					return p.table([]string{"TIME", "ACTOR", "ACTION", "TENANT", "REASON", "SOURCE", "DETAIL"}, rows)
				})
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's records")
	cmd.Flags().Int32Var(&limit, "limit", 100, "at most this many records")
	return cmd
}

// auditDetail is the detail column: the claimed identity, issuer and role of
// a refusal, the count of an audit-dropped record, then the detail.
func auditDetail(r *accessv1.AuditRecord) string {
	var parts []string
	for _, kv := range [][2]string{{"identity", r.GetIdentity()}, {"issuer", r.GetIssuer()}, {"role", r.GetRole()}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if r.GetDropped() > 0 {
		parts = append(parts, fmt.Sprintf("dropped=%d", r.GetDropped()))
	}
	if r.GetDetail() != "" {
		parts = append(parts, r.GetDetail())
	}
	return strings.Join(parts, " ")
}
