package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

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
	)
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
