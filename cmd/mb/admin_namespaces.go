package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// namespaceArg validates tenant/namespace.
func namespaceArg(s string) (*utils.NameSpaceName, error) {
	ns, err := utils.GetNamespaceName(s)
	if err != nil {
		return nil, fmt.Errorf("invalid namespace %q: want tenant/namespace", s)
	}
	return ns, nil
}

// nsCommand builds a command taking one tenant/namespace argument.
func nsCommand(o *adminOptions, use, short string, fn func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " TENANT/NAMESPACE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
			ns, err := namespaceArg(args[0])
			if err != nil {
				return err
			}
			return fn(ctx, c, ns)
		}),
	}
}

// camelAliases lets pulsar-admin's camelCase flag names (--messageTTL,
// --limitTime) reach our kebab-case flags.
func camelAliases(aliases map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			return pflag.NormalizedName(to)
		}
		return pflag.NormalizedName(name)
	}
}

func newNamespacesCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "namespaces", Short: "Manage namespaces and their policies"}
	cmd.AddCommand(namespaceBundleCommands(o)...)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list TENANT",
			Short: "List the namespaces of a tenant",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
				ns, err := c.api.Namespaces().GetNamespacesWithContext(ctx, args[0])
				if err != nil {
					return err
				}
				return c.out.list(c.last(), ns)
			}),
		},
		nsCommand(o, "topics", "List the topics of a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			ts, err := c.api.Namespaces().GetTopicsWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			return c.out.list(c.last(), ts)
		}),
		nsCommand(o, "policies", "Show all policies of a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			p, err := c.api.Namespaces().GetPoliciesWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			return c.out.object(c.last(), p)
		}),
		nsCommand(o, "create", "Create a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().CreateNamespaceWithContext(ctx, ns.String())
		}),
		newNamespaceDeleteCommand(o),

		newSetRetentionCommand(o),
		nsCommand(o, "get-retention", "Show the retention policy", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			p, err := c.api.Namespaces().GetRetentionWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			return c.out.object(c.last(), p)
		}),
		nsCommand(o, "remove-retention", "Remove the retention policy", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveRetentionWithContext(ctx, ns.String())
		}),

		newSetMessageTTLCommand(o),
		nsCommand(o, "get-message-ttl", "Show the message TTL in seconds", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			ttl, err := c.api.Namespaces().GetNamespaceMessageTTLWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			return c.out.object(c.last(), ttl)
		}),
		nsCommand(o, "remove-message-ttl", "Remove the message TTL", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveNamespaceMessageTTLWithContext(ctx, ns.String())
		}),

		newSetBacklogQuotaCommand(o),
		nsCommand(o, "get-backlog-quotas", "Show the backlog quotas", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			m, err := c.api.Namespaces().GetBacklogQuotaMapWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			if c.out.json {
				return c.out.rawJSON(c.last(), m)
			}
			return c.out.table([]string{"TYPE", "LIMIT-SIZE", "LIMIT-TIME", "POLICY"}, backlogQuotaRows(m))
		}),
		nsCommand(o, "remove-backlog-quota", "Remove the destination_storage backlog quota", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveBacklogQuotaWithContext(ctx, ns.String())
		}),

		newSetDeduplicationCommand(o),
		nsCommand(o, "get-deduplication", "Show whether deduplication is enabled", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			// pulsaradmin has no call for the namespace's status.
			var enabled bool
			tenant, name, _ := strings.Cut(ns.String(), "/")
			if err := c.rest.GetWithContext(ctx, restPath("namespaces", tenant, name, "deduplication"), &enabled); err != nil {
				return err
			}
			return c.out.object(c.last(), enabled)
		}),

		newGrantPermissionCommand(o),
		newRevokePermissionCommand(o),
		nsCommand(o, "permissions", "Show the roles and actions granted on a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			perms, err := c.api.Namespaces().GetNamespacePermissionsWithContext(ctx, *ns)
			if err != nil {
				return err
			}
			if c.out.json {
				return c.out.rawJSON(c.last(), perms)
			}
			return c.out.table([]string{"ROLE", "ACTIONS"}, permissionRows(perms))
		}),

		newSetAutoTopicCreationCommand(o),
		nsCommand(o, "get-auto-topic-creation", "Show the auto topic creation override", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			cfg, err := c.api.Namespaces().GetTopicAutoCreationWithContext(ctx, *ns)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), cfg)
		}),
		nsCommand(o, "remove-auto-topic-creation", "Remove the auto topic creation override", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveTopicAutoCreationWithContext(ctx, *ns)
		}),

		newSetLimitCommand(o, "set-max-producers-per-topic", "max-producers-per-topic", "p", "Limit the producers per topic",
			func(ctx context.Context, c *adminClient, ns utils.NameSpaceName, n int) error {
				return c.api.Namespaces().SetMaxProducersPerTopicWithContext(ctx, ns, n)
			}),
		nsCommand(o, "get-max-producers-per-topic", "Show the producer limit per topic", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			n, err := c.api.Namespaces().GetMaxProducersPerTopicWithContext(ctx, *ns)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), n)
		}),
		nsCommand(o, "remove-max-producers-per-topic", "Remove the producer limit per topic", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveMaxProducersPerTopicWithContext(ctx, *ns)
		}),
		newSetLimitCommand(o, "set-max-consumers-per-topic", "max-consumers-per-topic", "c", "Limit the consumers per topic",
			func(ctx context.Context, c *adminClient, ns utils.NameSpaceName, n int) error {
				return c.api.Namespaces().SetMaxConsumersPerTopicWithContext(ctx, ns, n)
			}),
		nsCommand(o, "get-max-consumers-per-topic", "Show the consumer limit per topic", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			n, err := c.api.Namespaces().GetMaxConsumersPerTopicWithContext(ctx, *ns)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), n)
		}),
		nsCommand(o, "remove-max-consumers-per-topic", "Remove the consumer limit per topic", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return c.api.Namespaces().RemoveMaxConsumersPerTopicWithContext(ctx, *ns)
		}),
	)
	cmd.AddCommand(schemaPolicyCommands(o)...)
	cmd.AddCommand(newSetClustersCommand(o),
		nsCommand(o, "get-clusters", "Show the clusters a namespace replicates to", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			cs, err := c.api.Namespaces().GetNamespaceReplicationClustersWithContext(ctx, ns.String())
			if err != nil {
				return err
			}
			return c.out.list(c.last(), cs)
		}))
	return cmd
}

func newSetClustersCommand(o *adminOptions) *cobra.Command {
	var clusters []string
	cmd := nsCommand(o, "set-clusters", "Replicate a namespace's topics to these clusters (geo-replication)", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		return c.api.Namespaces().SetNamespaceReplicationClustersWithContext(ctx, ns.String(), clusters)
	})
	cmd.Flags().StringSliceVarP(&clusters, "clusters", "c", nil, "comma-separated clusters, the local one included (e.g. a,b,c)")
	cmd.MarkFlagRequired("clusters")
	return cmd
}

func newNamespaceDeleteCommand(o *adminOptions) *cobra.Command {
	var force bool
	cmd := nsCommand(o, "delete", "Delete a namespace (refused while it has topics, unless --force)", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		if force {
			// pulsaradmin has no force flag for namespaces.
			tenant, name, _ := strings.Cut(ns.String(), "/")
			return c.rest.DeleteWithQueryParamsWithContext(ctx, restPath("namespaces", tenant, name), map[string]string{"force": "true"})
		}
		return c.api.Namespaces().DeleteNamespaceWithContext(ctx, ns.String())
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete the namespace with all its topics")
	return cmd
}

func newSetRetentionCommand(o *adminOptions) *cobra.Command {
	var size, timeLimit string
	cmd := nsCommand(o, "set-retention", "Keep acknowledged messages up to a size and an age", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		p, err := retentionPolicies(size, timeLimit)
		if err != nil {
			return err
		}
		return c.api.Namespaces().SetRetentionWithContext(ctx, ns.String(), p)
	})
	f := cmd.Flags()
	f.StringVarP(&size, "size", "s", "", "retention size: 10M, 16G, 3T (bytes without unit); 0 none, -1 unlimited")
	f.StringVarP(&timeLimit, "time", "t", "", "retention time: 100m, 3h, 2d, 5w (seconds without unit); 0 none, -1 unlimited")
	cmd.MarkFlagRequired("size")
	cmd.MarkFlagRequired("time")
	return cmd
}

func newSetMessageTTLCommand(o *adminOptions) *cobra.Command {
	var ttl string
	cmd := nsCommand(o, "set-message-ttl", "Expire unacknowledged messages older than the TTL", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		secs, err := parseTimeLimit(ttl)
		if err != nil {
			return err
		}
		if secs < 0 || secs > int64(^uint32(0)>>1) {
			return fmt.Errorf("invalid --ttl %q: want 0 (disabled) or a positive duration", ttl)
		}
		return c.api.Namespaces().SetNamespaceMessageTTLWithContext(ctx, ns.String(), int(secs))
	})
	cmd.Flags().StringVar(&ttl, "ttl", "", "message TTL: 3600, 100m, 3h, 2d (seconds without unit); 0 disables")
	cmd.Flags().SetNormalizeFunc(camelAliases(map[string]string{"messageTTL": "ttl"}))
	cmd.MarkFlagRequired("ttl")
	return cmd
}

func newSetBacklogQuotaCommand(o *adminOptions) *cobra.Command {
	var limit, limitTime, policy, quotaType string
	cmd := nsCommand(o, "set-backlog-quota", "Limit the backlog by size or age, and say what happens beyond", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		q, t, err := parseBacklogQuota(limit, limitTime, policy, quotaType)
		if err != nil {
			return err
		}
		return c.api.Namespaces().SetBacklogQuotaWithContext(ctx, ns.String(), q, t)
	})
	f := cmd.Flags()
	f.StringVarP(&limit, "limit", "l", "", "backlog size limit: 10M, 16G (destination_storage)")
	f.StringVar(&limitTime, "limit-time", "", "backlog age limit: 100m, 3h, 2d (message_age)")
	f.StringVarP(&policy, "policy", "p", "", "producer_request_hold, producer_exception or consumer_backlog_eviction")
	f.StringVarP(&quotaType, "type", "t", string(utils.DestinationStorage), "destination_storage or message_age")
	f.SetNormalizeFunc(camelAliases(map[string]string{"limitTime": "limit-time"}))
	cmd.MarkFlagRequired("policy")
	return cmd
}

func newSetDeduplicationCommand(o *adminOptions) *cobra.Command {
	var enable, disable bool
	cmd := nsCommand(o, "set-deduplication", "Enable or disable message deduplication", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		return c.api.Namespaces().SetDeduplicationStatusWithContext(ctx, ns.String(), enable)
	})
	cmd.Flags().BoolVarP(&enable, "enable", "e", false, "enable deduplication")
	cmd.Flags().BoolVarP(&disable, "disable", "d", false, "disable deduplication")
	cmd.MarkFlagsMutuallyExclusive("enable", "disable")
	cmd.MarkFlagsOneRequired("enable", "disable")
	return cmd
}

func newGrantPermissionCommand(o *adminOptions) *cobra.Command {
	var role, actions string
	cmd := nsCommand(o, "grant-permission", "Grant a role actions on a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		as, err := parseActions(actions)
		if err != nil {
			return err
		}
		return c.api.Namespaces().GrantNamespacePermissionWithContext(ctx, *ns, role, as)
	})
	cmd.Flags().StringVar(&role, "role", "", "client role")
	cmd.Flags().StringVar(&actions, "actions", "", "comma-separated actions: produce, consume, functions, packages, sinks, sources")
	cmd.MarkFlagRequired("role")
	cmd.MarkFlagRequired("actions")
	return cmd
}

func newRevokePermissionCommand(o *adminOptions) *cobra.Command {
	var role string
	cmd := nsCommand(o, "revoke-permission", "Revoke a role's permissions on a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		return c.api.Namespaces().RevokeNamespacePermissionWithContext(ctx, *ns, role)
	})
	cmd.Flags().StringVar(&role, "role", "", "client role")
	cmd.MarkFlagRequired("role")
	return cmd
}

func newSetAutoTopicCreationCommand(o *adminOptions) *cobra.Command {
	var enable, disable bool
	var topicType string
	var partitions int
	cmd := nsCommand(o, "set-auto-topic-creation", "Override the broker's auto topic creation for a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		cfg := utils.TopicAutoCreationConfig{Allow: enable}
		if enable {
			t, err := utils.ParseTopicType(topicType)
			if err != nil {
				return fmt.Errorf("invalid --type %q: want partitioned or non-partitioned", topicType)
			}
			cfg.Type = t
			if t == utils.Partitioned {
				if partitions <= 0 {
					return errors.New("--num-partitions must be positive for partitioned topics")
				}
				cfg.Partitions = &partitions
			}
		}
		return c.api.Namespaces().SetTopicAutoCreationWithContext(ctx, *ns, cfg)
	})
	f := cmd.Flags()
	f.BoolVarP(&enable, "enable", "e", false, "allow auto topic creation")
	f.BoolVarP(&disable, "disable", "d", false, "forbid auto topic creation")
	f.StringVarP(&topicType, "type", "t", string(utils.NonPartitioned), "type of topics created: partitioned or non-partitioned")
	f.IntVarP(&partitions, "num-partitions", "n", 0, "partitions of auto-created partitioned topics")
	cmd.MarkFlagsMutuallyExclusive("enable", "disable")
	cmd.MarkFlagsOneRequired("enable", "disable")
	return cmd
}

// newSetLimitCommand builds set-max-producers-per-topic and its kin.
func newSetLimitCommand(o *adminOptions, use, flag, short, desc string, set func(context.Context, *adminClient, utils.NameSpaceName, int) error) *cobra.Command {
	var n int
	cmd := nsCommand(o, use, desc, func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		if n < 0 {
			return fmt.Errorf("--%s must be 0 (unlimited) or more", flag)
		}
		return set(ctx, c, *ns, n)
	})
	cmd.Flags().IntVarP(&n, flag, short, 0, "the limit; 0 means unlimited")
	cmd.MarkFlagRequired(flag)
	return cmd
}

func backlogQuotaRows(m map[utils.BacklogQuotaType]utils.BacklogQuota) [][]string {
	rows := make([][]string, 0, len(m))
	for t, q := range m {
		rows = append(rows, []string{string(t), strconv.FormatInt(q.LimitSize, 10), strconv.FormatInt(q.LimitTime, 10), string(q.Policy)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}

func permissionRows(perms map[string][]utils.AuthAction) [][]string {
	rows := make([][]string, 0, len(perms))
	for role, actions := range perms {
		names := make([]string, len(actions))
		for i, a := range actions {
			names[i] = string(a)
		}
		sort.Strings(names)
		rows = append(rows, []string{role, strings.Join(names, ",")})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}
