package main

import (
	"context"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// Topic grants, as pulsar-admin topics grant-permission, revoke-permission
// and permissions (a grant on a partitioned topic covers its partitions).

func topicPermissionCommands(o *adminOptions) []*cobra.Command {
	var role, actions string
	grant := topicCommand(o, "grant-permission", "Grant a role actions on a topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		as, err := parseActions(actions)
		if err != nil {
			return err
		}
		return c.api.Topics().GrantPermissionWithContext(ctx, *t, role, as)
	})
	grant.Flags().StringVar(&role, "role", "", "client role")
	grant.Flags().StringVar(&actions, "actions", "", "comma-separated actions: produce, consume")
	grant.MarkFlagRequired("role")
	grant.MarkFlagRequired("actions")

	var revokeRole string
	revoke := topicCommand(o, "revoke-permission", "Revoke a role's permissions on a topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		return c.api.Topics().RevokePermissionWithContext(ctx, *t, revokeRole)
	})
	revoke.Flags().StringVar(&revokeRole, "role", "", "client role")
	revoke.MarkFlagRequired("role")

	show := topicCommand(o, "permissions", "Show the roles and actions granted on a topic (its namespace's grants included)", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		perms, err := c.api.Topics().GetPermissionsWithContext(ctx, *t)
		if err != nil {
			return err
		}
		if c.out.json {
			return c.out.rawJSON(c.last(), perms)
		}
		return c.out.table([]string{"ROLE", "ACTIONS"}, permissionRows(perms))
	})
	return []*cobra.Command{grant, revoke, show}
}
