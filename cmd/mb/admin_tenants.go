package main

import (
	"context"
	"errors"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

func newTenantsCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Short: "Manage tenants"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List tenants",
			Args:  cobra.NoArgs,
			RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
				ts, err := c.api.Tenants().ListWithContext(ctx)
				if err != nil {
					return err
				}
				return c.out.list(c.last(), ts)
			}),
		},
		&cobra.Command{
			Use:   "get TENANT",
			Short: "Show a tenant's admin roles and allowed clusters",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
				data, err := c.api.Tenants().GetWithContext(ctx, args[0])
				if err != nil {
					return err
				}
				return c.out.object(c.last(), data)
			}),
		},
		newTenantWriteCommand(o, "create"),
		newTenantWriteCommand(o, "update"),
		newTenantDeleteCommand(o),
	)
	return cmd
}

// newTenantWriteCommand builds `tenants create` and `tenants update`, as
// pulsar-admin's: create without clusters (no flag or an empty list) allows
// every cluster the server lists; update keeps whatever is not given and
// sends an explicitly empty list, which the server refuses (412).
func newTenantWriteCommand(o *adminOptions, verb string) *cobra.Command {
	var roles, clusters []string
	cmd := &cobra.Command{
		Use:   verb + " TENANT",
		Short: map[string]string{"create": "Create a tenant", "update": "Change a tenant's admin roles or allowed clusters"}[verb],
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = o.run(func(ctx context.Context, c *adminClient, args []string) error {
		if !utils.CheckName(args[0]) {
			return errors.New("invalid tenant name " + args[0])
		}
		data := utils.TenantData{Name: args[0], AdminRoles: roles, AllowedClusters: clusters}
		if verb == "update" {
			cur, err := c.api.Tenants().GetWithContext(ctx, args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("admin-roles") {
				data.AdminRoles = cur.AdminRoles
			}
			if !cmd.Flags().Changed("allowed-clusters") {
				data.AllowedClusters = cur.AllowedClusters
			}
			return c.api.Tenants().UpdateWithContext(ctx, data)
		}
		if len(data.AllowedClusters) == 0 {
			all, err := c.api.Clusters().ListWithContext(ctx)
			if err != nil {
				return err
			}
			data.AllowedClusters = all
		}
		if data.AdminRoles == nil {
			data.AdminRoles = []string{}
		}
		return c.api.Tenants().CreateWithContext(ctx, data)
	})
	f := cmd.Flags()
	if verb == "create" {
		f.StringSliceVarP(&roles, "admin-roles", "r", nil, "comma-separated roles that administer the tenant")
		f.StringSliceVarP(&clusters, "allowed-clusters", "c", nil, "comma-separated clusters the tenant may use; if empty, every cluster")
	} else {
		f.StringSliceVarP(&roles, "admin-roles", "r", nil, "comma-separated roles that administer the tenant; if omitted, kept")
		f.StringSliceVarP(&clusters, "allowed-clusters", "c", nil, "comma-separated clusters the tenant may use; if omitted, kept (an empty list is refused)")
	}
	return cmd
}

func newTenantDeleteCommand(o *adminOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete TENANT",
		Short: "Delete a tenant (refused while it has namespaces, unless --force)",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = o.run(func(ctx context.Context, c *adminClient, args []string) error {
		if !utils.CheckName(args[0]) {
			return errors.New("invalid tenant name " + args[0])
		}
		if force {
			// pulsaradmin has no force flag for tenants.
			return c.rest.DeleteWithQueryParamsWithContext(ctx, restPath("tenants", args[0]), map[string]string{"force": "true"})
		}
		return c.api.Tenants().DeleteWithContext(ctx, args[0])
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete the tenant with all its namespaces and topics")
	return cmd
}
