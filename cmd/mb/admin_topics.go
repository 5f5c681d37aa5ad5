package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// topicArg validates a topic name; short names (my-topic) mean
// persistent://public/default/my-topic as everywhere in Pulsar.
func topicArg(s string) (*utils.TopicName, error) {
	t, err := utils.GetTopicName(s)
	if err != nil {
		return nil, fmt.Errorf("invalid topic %q: %v", s, err)
	}
	return t, nil
}

// topicCommand builds a command taking one topic argument.
func topicCommand(o *adminOptions, use, short string, fn func(ctx context.Context, c *adminClient, t *utils.TopicName) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " TOPIC",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
			t, err := topicArg(args[0])
			if err != nil {
				return err
			}
			return fn(ctx, c, t)
		}),
	}
}

func newTopicsCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Manage topics"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list TENANT/NAMESPACE",
			Short: "List the topics of a namespace, partitioned and not",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
				ns, err := namespaceArg(args[0])
				if err != nil {
					return err
				}
				partitioned, plain, err := c.api.Topics().ListWithContext(ctx, *ns)
				if err != nil {
					return err
				}
				// Four requests answer this one; json is the union of the
				// names, the shape of each of the server's answers.
				rows := make([][]string, 0, len(partitioned)+len(plain))
				for _, t := range partitioned {
					rows = append(rows, []string{t, "partitioned"})
				}
				for _, t := range plain {
					rows = append(rows, []string{t, "non-partitioned"})
				}
				sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
				if c.out.json {
					names := make([]string, len(rows))
					for i, r := range rows {
						names[i] = r[0]
					}
					return c.out.value(names)
				}
				return c.out.table([]string{"TOPIC", "TYPE"}, rows)
			}),
		},
		topicCommand(o, "create", "Create a non-partitioned topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			return c.api.Topics().CreateWithContext(ctx, *t, 0)
		}),
		newPartitionsCommand(o, "create-partitioned-topic", "Create a partitioned topic",
			func(ctx context.Context, c *adminClient, t utils.TopicName, n int) error {
				return c.api.Topics().CreateWithContext(ctx, t, n)
			}),
		newPartitionsCommand(o, "update-partitioned-topic", "Grow a partitioned topic to more partitions",
			func(ctx context.Context, c *adminClient, t utils.TopicName, n int) error {
				return c.api.Topics().UpdateWithContext(ctx, t, n)
			}),
		topicCommand(o, "get-partitioned-topic-metadata", "Show the number of partitions", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			md, err := c.api.Topics().GetMetadataWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), md)
		}),
		newTopicDeleteCommand(o, "delete", "Delete a non-partitioned topic", true),
		newTopicDeleteCommand(o, "delete-partitioned-topic", "Delete a partitioned topic and its partitions", false),
		topicCommand(o, "stats", "Show a topic's rates, storage, producers and subscriptions", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			s, err := c.api.Topics().GetStatsWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), s)
		}),
		newPartitionedStatsCommand(o),
		topicCommand(o, "internal-stats", "Show a topic's storage internals: entries, ledgers, cursors", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			s, err := c.api.Topics().GetInternalStatsWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), s)
		}),
		topicCommand(o, "lookup", "Show the broker serving a topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			l, err := c.api.Topics().LookupWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), l)
		}),
		topicCommand(o, "unload", "Close a topic's producers and consumers; they reconnect", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			return c.api.Topics().UnloadWithContext(ctx, *t)
		}),
		topicCommand(o, "terminate", "Refuse further messages; prints the last message id", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			id, err := c.api.Topics().TerminateWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return printMessageID(c, id)
		}),
		topicCommand(o, "last-message-id", "Show the id of the last message", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			id, err := c.api.Topics().GetLastMessageIDWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return printMessageID(c, id)
		}),
		newGetMessageIDCommand(o),
		newGetMessageByIDCommand(o),
		newTerminatePartitionsCommand(o),
		newPartitionedInternalStatsCommand(o),
	)
	cmd.AddCommand(topicPolicyCommands(o)...)
	cmd.AddCommand(compactionCommands(o)...)
	cmd.AddCommand(offloadCommands(o)...)
	cmd.AddCommand(topicPermissionCommands(o)...)
	return cmd
}

// printMessageID prints ledgerId:entryId:partition, or the server's JSON.
func printMessageID(c *adminClient, id utils.MessageID) error {
	if c.out.json {
		return c.out.rawJSON(c.last(), id)
	}
	_, err := fmt.Fprintf(c.out.w, "%d:%d:%d\n", id.LedgerID, id.EntryID, id.PartitionIndex)
	return err
}

func newPartitionsCommand(o *adminOptions, use, short string, fn func(context.Context, *adminClient, utils.TopicName, int) error) *cobra.Command {
	var n int
	cmd := topicCommand(o, use, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		if n <= 0 {
			return errors.New("--partitions must be positive")
		}
		return fn(ctx, c, *t, n)
	})
	cmd.Flags().IntVarP(&n, "partitions", "p", 0, "number of partitions")
	cmd.MarkFlagRequired("partitions")
	return cmd
}

func newTopicDeleteCommand(o *adminOptions, use, short string, nonPartitioned bool) *cobra.Command {
	var force bool
	cmd := topicCommand(o, use, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		return c.api.Topics().DeleteWithContext(ctx, *t, force, nonPartitioned)
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even with connected producers or consumers")
	return cmd
}

func newPartitionedStatsCommand(o *adminOptions) *cobra.Command {
	var perPartition bool
	cmd := topicCommand(o, "partitioned-stats", "Show the stats of a partitioned topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		s, err := c.api.Topics().GetPartitionedStatsWithContext(ctx, *t, perPartition)
		if err != nil {
			return err
		}
		return c.out.object(c.last(), s)
	})
	cmd.Flags().BoolVar(&perPartition, "per-partition", false, "include each partition's stats")
	return cmd
}

func newGetMessageIDCommand(o *adminOptions) *cobra.Command {
	var at string
	cmd := topicCommand(o, "get-message-id", "Find the first message published at or after a time", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		ts, err := parsePointInTime(at, time.Now())
		if err != nil {
			return err
		}
		id, err := c.api.Topics().GetMessageIDWithContext(ctx, *t, ts.UnixMilli())
		if err != nil {
			return err
		}
		return printMessageID(c, id)
	})
	cmd.Flags().StringVarP(&at, "datetime", "d", "", "RFC 3339 time (2024-05-01T10:00:00Z) or a duration ago (10m)")
	cmd.MarkFlagRequired("datetime")
	return cmd
}

func newGetMessageByIDCommand(o *adminOptions) *cobra.Command {
	var ledger, entry int64
	cmd := topicCommand(o, "get-message-by-id", "Show the message stored at ledger and entry ids", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		msgs, err := c.api.Subscriptions().GetMessagesByIDWithContext(ctx, *t, ledger, entry)
		if err != nil {
			return err
		}
		return printMessages(c.out, msgs)
	})
	cmd.Flags().Int64VarP(&ledger, "ledger-id", "l", 0, "ledger id")
	cmd.Flags().Int64VarP(&entry, "entry-id", "e", 0, "entry id")
	cmd.MarkFlagRequired("ledger-id")
	cmd.MarkFlagRequired("entry-id")
	return cmd
}

// topicPolicyCommands are pulsar-admin's topic-level policy commands
// (`pulsar-admin topics set-message-ttl` and kin). They go through
// pulsaradmin's scoped TopicPolicies so that an unset policy prints null
// instead of a made-up value.
func topicPolicyCommands(o *adminOptions) []*cobra.Command {
	scoped := func(c *adminClient) (pulsaradmin.TopicPolicies, error) {
		return pulsaradmin.TopicPoliciesOf(c.api, false)
	}
	// get builds get-NAME with --applied (the value in force: the topic's,
	// else the namespace's, else the broker default).
	get := func(name, short string, fn func(context.Context, pulsaradmin.TopicPolicies, utils.TopicName, bool) (any, error)) *cobra.Command {
		var applied bool
		cmd := topicCommand(o, "get-"+name, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			tp, err := scoped(c)
			if err != nil {
				return err
			}
			v, err := fn(ctx, tp, *t, applied)
			if err != nil {
				return err
			}
			return c.out.object(c.last(), v)
		})
		cmd.Flags().BoolVar(&applied, "applied", false, "show the policy in force (topic, else namespace, else broker default)")
		return cmd
	}
	remove := func(name, short string, fn func(context.Context, pulsaradmin.TopicPolicies, utils.TopicName) error) *cobra.Command {
		return topicCommand(o, "remove-"+name, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			tp, err := scoped(c)
			if err != nil {
				return err
			}
			return fn(ctx, tp, *t)
		})
	}
	// limit builds set-NAME taking a count (0: unlimited) in --flag.
	limit := func(name, flag, shorthand, short string, fn func(context.Context, pulsaradmin.TopicPolicies, utils.TopicName, int) error) *cobra.Command {
		var n int
		cmd := topicCommand(o, "set-"+name, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			if n < 0 {
				return fmt.Errorf("--%s must be 0 (unlimited) or more", flag)
			}
			tp, err := scoped(c)
			if err != nil {
				return err
			}
			return fn(ctx, tp, *t, n)
		})
		cmd.Flags().IntVarP(&n, flag, shorthand, 0, "the limit; 0 means unlimited")
		cmd.MarkFlagRequired(flag)
		return cmd
	}
	asAny := func(v *int, err error) (any, error) { return v, err }

	var ttl string
	setTTL := topicCommand(o, "set-message-ttl", "Expire the topic's unacknowledged messages older than the TTL", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		secs, err := parseTimeLimit(ttl)
		if err != nil {
			return err
		}
		if secs < 0 || secs > int64(^uint32(0)>>1) {
			return fmt.Errorf("invalid --ttl %q: want 0 (disabled) or a positive duration", ttl)
		}
		tp, err := scoped(c)
		if err != nil {
			return err
		}
		return tp.SetMessageTTL(ctx, *t, int(secs))
	})
	setTTL.Flags().StringVarP(&ttl, "ttl", "t", "", "message TTL: 3600, 100m, 3h, 2d (seconds without unit); 0 disables")
	setTTL.MarkFlagRequired("ttl")

	var size, timeLimit string
	setRetention := topicCommand(o, "set-retention", "Keep the topic's acknowledged messages up to a size and an age", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		p, err := retentionPolicies(size, timeLimit)
		if err != nil {
			return err
		}
		tp, err := scoped(c)
		if err != nil {
			return err
		}
		return tp.SetRetention(ctx, *t, p)
	})
	setRetention.Flags().StringVarP(&size, "size", "s", "", "retention size: 10M, 16G, 3T (bytes without unit); 0 none, -1 unlimited")
	setRetention.Flags().StringVarP(&timeLimit, "time", "t", "", "retention time: 100m, 3h, 2d, 5w (seconds without unit); 0 none, -1 unlimited")
	setRetention.MarkFlagRequired("size")
	setRetention.MarkFlagRequired("time")

	var quotaLimit, quotaTime, quotaPolicy, quotaType string
	setQuota := topicCommand(o, "set-backlog-quota", "Limit the topic's backlog by size or age, and say what happens beyond", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		q, typ, err := parseBacklogQuota(quotaLimit, quotaTime, quotaPolicy, quotaType)
		if err != nil {
			return err
		}
		tp, err := scoped(c)
		if err != nil {
			return err
		}
		return tp.SetBacklogQuota(ctx, *t, q, typ)
	})
	qf := setQuota.Flags()
	qf.StringVarP(&quotaLimit, "limit", "l", "", "backlog size limit: 10M, 16G (destination_storage)")
	qf.StringVar(&quotaTime, "limit-time", "", "backlog age limit: 100m, 3h, 2d (message_age)")
	qf.StringVarP(&quotaPolicy, "policy", "p", "", "producer_request_hold, producer_exception or consumer_backlog_eviction")
	qf.StringVarP(&quotaType, "type", "t", string(utils.DestinationStorage), "destination_storage or message_age")
	qf.SetNormalizeFunc(camelAliases(map[string]string{"limitTime": "limit-time"}))
	setQuota.MarkFlagRequired("policy")

	var removeQuotaType string
	removeQuota := remove("backlog-quota", "Remove a backlog quota of the topic", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
		typ, err := utils.ParseBacklogQuotaType(strings.ToLower(removeQuotaType))
		if err != nil {
			return fmt.Errorf("invalid --type %q: want destination_storage or message_age", removeQuotaType)
		}
		return tp.RemoveBacklogQuota(ctx, t, typ)
	})
	removeQuota.Flags().StringVarP(&removeQuotaType, "type", "t", string(utils.DestinationStorage), "destination_storage or message_age")

	var enable, disable bool
	setDedup := topicCommand(o, "set-deduplication", "Enable or disable deduplication on the topic", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		tp, err := scoped(c)
		if err != nil {
			return err
		}
		return tp.SetDeduplicationStatus(ctx, *t, enable)
	})
	setDedup.Flags().BoolVarP(&enable, "enable", "e", false, "enable deduplication")
	setDedup.Flags().BoolVarP(&disable, "disable", "d", false, "disable deduplication")
	setDedup.MarkFlagsMutuallyExclusive("enable", "disable")
	setDedup.MarkFlagsOneRequired("enable", "disable")

	var getQuotas *cobra.Command
	{
		var applied bool
		getQuotas = topicCommand(o, "get-backlog-quotas", "Show the topic's backlog quotas", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			tp, err := scoped(c)
			if err != nil {
				return err
			}
			m, err := tp.GetBacklogQuotaMap(ctx, *t, applied)
			if err != nil {
				return err
			}
			if c.out.json {
				return c.out.rawJSON(c.last(), m)
			}
			return c.out.table([]string{"TYPE", "LIMIT-SIZE", "LIMIT-TIME", "POLICY"}, backlogQuotaRows(m))
		})
		getQuotas.Flags().BoolVar(&applied, "applied", false, "show the quotas in force (topic, else namespace, else broker default)")
	}

	return []*cobra.Command{
		setTTL,
		get("message-ttl", "Show the topic's message TTL in seconds", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return asAny(tp.GetMessageTTL(ctx, t, applied))
		}),
		remove("message-ttl", "Remove the topic's message TTL", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveMessageTTL(ctx, t)
		}),
		setRetention,
		get("retention", "Show the topic's retention policy", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return tp.GetRetention(ctx, t, applied)
		}),
		remove("retention", "Remove the topic's retention policy", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveRetention(ctx, t)
		}),
		setQuota, getQuotas, removeQuota,
		setDedup,
		get("deduplication", "Show whether deduplication is enabled on the topic", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return tp.GetDeduplicationStatus(ctx, t, applied)
		}),
		remove("deduplication", "Remove the topic's deduplication policy", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveDeduplicationStatus(ctx, t)
		}),
		limit("max-producers", "max-producers", "p", "Limit the producers of the topic", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, n int) error {
			return tp.SetMaxProducers(ctx, t, n)
		}),
		get("max-producers", "Show the topic's producer limit", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return asAny(tp.GetMaxProducers(ctx, t, applied))
		}),
		remove("max-producers", "Remove the topic's producer limit", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveMaxProducers(ctx, t)
		}),
		limit("max-consumers", "max-consumers", "c", "Limit the consumers of the topic", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, n int) error {
			return tp.SetMaxConsumers(ctx, t, n)
		}),
		get("max-consumers", "Show the topic's consumer limit", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return asAny(tp.GetMaxConsumers(ctx, t, applied))
		}),
		remove("max-consumers", "Remove the topic's consumer limit", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveMaxConsumers(ctx, t)
		}),
		limit("max-consumers-per-subscription", "max-consumers-per-subscription", "c", "Limit the consumers of each subscription of the topic",
			func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, n int) error {
				return tp.SetMaxConsumersPerSubscription(ctx, t, n)
			}),
		get("max-consumers-per-subscription", "Show the topic's consumer limit per subscription", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName, applied bool) (any, error) {
			return asAny(tp.GetMaxConsumersPerSubscription(ctx, t, applied))
		}),
		remove("max-consumers-per-subscription", "Remove the topic's consumer limit per subscription", func(ctx context.Context, tp pulsaradmin.TopicPolicies, t utils.TopicName) error {
			return tp.RemoveMaxConsumersPerSubscription(ctx, t)
		}),
	}
}

// pulsaradmin has no call for the two commands below; they use the REST
// paths pulsar-admin uses.

// topicRestPath is the /admin/v2 path of a topic followed by parts.
func topicRestPath(t *utils.TopicName, parts ...string) string {
	return restPath(append([]string{string(t.GetDomain()), t.GetTenant(), t.GetNamespace(), t.GetLocalName()}, parts...)...)
}

func newTerminatePartitionsCommand(o *adminOptions) *cobra.Command {
	return topicCommand(o, "partitioned-terminate", "Terminate every partition; prints each one's last message id",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			var ids map[string]utils.MessageID
			if err := c.rest.PostWithObjWithContext(ctx, topicRestPath(t, "terminate", "partitions"), nil, &ids); err != nil {
				return err
			}
			return c.out.object(c.last(), ids)
		})
}

func newPartitionedInternalStatsCommand(o *adminOptions) *cobra.Command {
	return topicCommand(o, "partitioned-stats-internal", "Show the storage internals of every partition",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			var st any
			if err := c.rest.GetWithContext(ctx, topicRestPath(t, "partitioned-internalStats"), &st); err != nil {
				return err
			}
			return c.out.object(c.last(), st)
		})
}
