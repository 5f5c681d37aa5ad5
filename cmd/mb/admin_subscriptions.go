package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// subCommand builds a command on TOPIC with a required -s SUBSCRIPTION, as
// pulsar-admin's topic sub-commands take it.
func subCommand(o *adminOptions, use, short string, fn func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error) *cobra.Command {
	var sub string
	cmd := topicCommand(o, use, short, func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		if sub == "" {
			return errors.New("--subscription must not be empty")
		}
		return fn(ctx, c, t, sub)
	})
	cmd.Flags().StringVarP(&sub, "subscription", "s", "", "subscription name")
	cmd.MarkFlagRequired("subscription")
	return cmd
}

func newSubscriptionsCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "subscriptions", Short: "Manage a topic's subscriptions and their cursors"}
	cmd.AddCommand(
		topicCommand(o, "list", "List a topic's subscriptions", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			subs, err := c.api.Subscriptions().ListWithContext(ctx, *t)
			if err != nil {
				return err
			}
			return c.out.list(c.last(), subs)
		}),
		newCreateSubscriptionCommand(o),
		newDeleteSubscriptionCommand(o),
		newSkipCommand(o),
		subCommand(o, "clear-backlog", "Skip all messages of a subscription's backlog", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
			return c.api.Subscriptions().ClearBacklogWithContext(ctx, *t, sub)
		}),
		newResetCursorCommand(o),
		newExpireCommand(o),
		newPeekCommand(o),
	)
	return cmd
}

func newCreateSubscriptionCommand(o *adminOptions) *cobra.Command {
	var at string
	cmd := subCommand(o, "create", "Create a subscription at a position", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
		id, err := parseMessageID(at)
		if err != nil {
			return err
		}
		return c.api.Subscriptions().CreateWithContext(ctx, *t, sub, id)
	})
	cmd.Flags().StringVarP(&at, "message-id", "m", "latest", "position: latest, earliest or ledgerId:entryId")
	return cmd
}

func newDeleteSubscriptionCommand(o *adminOptions) *cobra.Command {
	var force bool
	cmd := subCommand(o, "delete", "Delete a subscription (refused while it has consumers, unless --force)", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
		if force {
			return c.api.Subscriptions().ForceDeleteWithContext(ctx, *t, sub)
		}
		return c.api.Subscriptions().DeleteWithContext(ctx, *t, sub)
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "disconnect the subscription's consumers and delete it")
	return cmd
}

func newSkipCommand(o *adminOptions) *cobra.Command {
	var n int64
	cmd := subCommand(o, "skip", "Skip the next N messages of a subscription", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
		if n <= 0 {
			return errors.New("--count must be positive")
		}
		return c.api.Subscriptions().SkipMessagesWithContext(ctx, *t, sub, n)
	})
	cmd.Flags().Int64VarP(&n, "count", "n", 0, "number of messages to skip")
	cmd.MarkFlagRequired("count")
	return cmd
}

func newResetCursorCommand(o *adminOptions) *cobra.Command {
	var at, id string
	cmd := subCommand(o, "reset-cursor", "Move a subscription to a message id or a publish time", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
		if id != "" {
			mid, err := parseMessageID(id)
			if err != nil {
				return err
			}
			return c.api.Subscriptions().ResetCursorToMessageIDWithContext(ctx, *t, sub, mid)
		}
		ts, err := parsePointInTime(at, time.Now())
		if err != nil {
			return err
		}
		return c.api.Subscriptions().ResetCursorToTimestampWithContext(ctx, *t, sub, ts.UnixMilli())
	})
	cmd.Flags().StringVarP(&at, "time", "t", "", "publish time: a duration ago (10m, 3h, 2d) or RFC 3339 (2024-05-01T10:00:00Z)")
	cmd.Flags().StringVarP(&id, "message-id", "m", "", "message id: ledgerId:entryId, earliest or latest")
	cmd.MarkFlagsMutuallyExclusive("time", "message-id")
	cmd.MarkFlagsOneRequired("time", "message-id")
	return cmd
}

func newExpireCommand(o *adminOptions) *cobra.Command {
	var sub, expire string
	var all bool
	cmd := topicCommand(o, "expire", "Acknowledge messages older than a time, for one or all subscriptions", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		secs, err := parseTimeLimit(expire)
		if err != nil {
			return err
		}
		if secs < 0 {
			return errors.New("--expire-time must not be negative")
		}
		if all {
			return c.api.Subscriptions().ExpireAllMessagesWithContext(ctx, *t, secs)
		}
		return c.api.Subscriptions().ExpireMessagesWithContext(ctx, *t, sub, secs)
	})
	f := cmd.Flags()
	f.StringVarP(&sub, "subscription", "s", "", "subscription name")
	f.BoolVar(&all, "all-subscriptions", false, "expire on every subscription of the topic")
	f.StringVarP(&expire, "expire-time", "t", "", "expire messages older than this: 100 (seconds), 10m, 3h")
	f.SetNormalizeFunc(camelAliases(map[string]string{"expireTime": "expire-time"}))
	cmd.MarkFlagRequired("expire-time")
	cmd.MarkFlagsMutuallyExclusive("subscription", "all-subscriptions")
	cmd.MarkFlagsOneRequired("subscription", "all-subscriptions")
	return cmd
}

func newPeekCommand(o *adminOptions) *cobra.Command {
	var n int
	cmd := subCommand(o, "peek", "Show the next messages of a subscription without consuming them", func(ctx context.Context, c *adminClient, t *utils.TopicName, sub string) error {
		if n <= 0 {
			return errors.New("--count must be positive")
		}
		msgs, err := c.api.Subscriptions().PeekMessagesWithContext(ctx, *t, sub, n)
		if err != nil {
			return err
		}
		return printMessages(c.out, msgs)
	})
	cmd.Flags().IntVarP(&n, "count", "n", 1, "number of messages")
	return cmd
}

// peekedMessage is how --output json shows a message read through the admin
// API (the server sends it as a binary body with headers, not as JSON).
type peekedMessage struct {
	MessageID     string            `json:"messageId"`
	Properties    map[string]string `json:"properties"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payloadBase64,omitempty"`
}

func printMessages(p *printer, msgs []*utils.Message) error {
	if p.json {
		out := make([]peekedMessage, len(msgs))
		for i, m := range msgs {
			out[i] = peekedMessage{MessageID: adminMessageID(m.MessageID), Properties: m.Properties}
			if out[i].Properties == nil {
				out[i].Properties = map[string]string{}
			}
			if utf8.Valid(m.Payload) {
				s := string(m.Payload)
				out[i].Payload = &s
			} else {
				out[i].PayloadBase64 = base64.StdEncoding.EncodeToString(m.Payload)
			}
		}
		return p.value(out)
	}
	rows := make([][]string, len(msgs))
	for i, m := range msgs {
		rows[i] = []string{adminMessageID(m.MessageID), formatProperties(m.Properties), displayPayload(m.Payload)}
	}
	return p.table([]string{"MESSAGE-ID", "PROPERTIES", "PAYLOAD"}, rows)
}

func adminMessageID(id utils.MessageID) string {
	s := fmt.Sprintf("%d:%d:%d", id.LedgerID, id.EntryID, id.PartitionIndex)
	if id.BatchIndex >= 0 {
		s += ":" + strconv.Itoa(id.BatchIndex)
	}
	return s
}

func formatProperties(props map[string]string) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + props[k]
	}
	return strings.Join(parts, ",")
}

// displayPayload keeps one message on one table row: printable text as is,
// other text quoted, binary as base64.
func displayPayload(b []byte) string {
	if !utf8.Valid(b) {
		return "base64:" + base64.StdEncoding.EncodeToString(b)
	}
	s := string(b)
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
