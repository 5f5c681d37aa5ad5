package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/spf13/cobra"
)

// consumeOptions are the flags of `mb consume`.
type consumeOptions struct {
	clientOptions
	subscription string
	subType      string
	num          int
	position     string
	output       string
}

func newConsumeCommand() *cobra.Command {
	o := &consumeOptions{}
	cmd := &cobra.Command{
		Use:   "consume TOPIC [TOPIC...]",
		Short: "Receive, print and acknowledge messages (like pulsar-client consume)",
		Long: `Subscribe, print each message received and acknowledge it.

--output text prints each payload on its own line; --output json prints one
JSON object per line with topic, messageId, key, properties, publishTime,
eventTime (when set), redeliveryCount and payload (payloadBase64 instead when
the payload is not UTF-8). --position applies only when the subscription is
created. With -n 0 it runs until interrupted.`,
		Example: `  mb consume my-topic -s my-sub -n 10
  mb consume orders -s audit -t shared -n 0 --position earliest --output json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
	o.register(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.subscription, "subscription-name", "s", "", "subscription name")
	f.StringVarP(&o.subType, "subscription-type", "t", "exclusive", "exclusive, shared, failover or key_shared")
	f.IntVarP(&o.num, "num-messages", "n", 1, "messages to consume; 0 for no limit")
	f.StringVarP(&o.position, "position", "p", "latest", "where a new subscription starts: earliest or latest")
	f.StringVarP(&o.output, "output", "o", "text", "text (payload per line) or json (one object per line)")
	f.SetNormalizeFunc(camelAliases(map[string]string{"subscription-position": "position"}))
	cmd.MarkFlagRequired("subscription-name")
	return cmd
}

func (o *consumeOptions) run(cmd *cobra.Command, topics []string) error {
	subType, err := parseSubscriptionType(o.subType)
	if err != nil {
		return err
	}
	pos, err := parseInitialPosition(o.position)
	if err != nil {
		return err
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("invalid --output %q: want text or json", o.output)
	}
	if o.num < 0 {
		return errors.New("--num-messages must be 0 (no limit) or more")
	}
	if o.subscription == "" {
		return errors.New("--subscription-name must not be empty")
	}

	ctx, stop := interruptible(cmd.Context())
	defer stop()
	client, err := o.newClient()
	if err != nil {
		return err
	}
	defer client.Close()
	opts := pulsar.ConsumerOptions{
		SubscriptionName:            o.subscription,
		Type:                        subType,
		SubscriptionInitialPosition: pos,
		// A run that stops inside a batch must not see its acked part again.
		EnableBatchIndexAcknowledgment: true,
	}
	if len(topics) == 1 {
		opts.Topic = topics[0]
	} else {
		opts.Topics = topics
	}
	if o.num > 0 && o.num < 1000 {
		// Do not prefetch (and hold from other consumers) more than we print.
		opts.ReceiverQueueSize = o.num
	}
	consumer, err := client.Subscribe(opts)
	if err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", o.subscription, strings.Join(topics, ","), err)
	}
	// Close flushes the acknowledgements still grouped in the client.
	defer consumer.Close()

	prog := startProgress(cmd.ErrOrStderr(), o.progressEnabled(cmd), o.progressInterval, "consumed")
	out := cmd.OutOrStdout()
	for o.num == 0 || prog.count.Load() < int64(o.num) {
		msg, err := consumer.Receive(ctx)
		if err != nil {
			n := prog.close()
			if ctx.Err() != nil {
				if o.num == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "consumed %d messages\n", n)
					return nil
				}
				return fmt.Errorf("interrupted after %d of %d messages", n, o.num)
			}
			return fmt.Errorf("receive: %w", err)
		}
		if err := printMessage(out, o.output, msg); err != nil {
			prog.close()
			return err
		}
		if err := consumer.Ack(msg); err != nil {
			prog.close()
			return fmt.Errorf("ack %v: %w", msg.ID(), err)
		}
		prog.add(1)
	}
	n := prog.close()
	fmt.Fprintf(cmd.ErrOrStderr(), "consumed %d messages\n", n)
	return nil
}

// consumedMessage is one line of `mb consume --output json`.
type consumedMessage struct {
	Topic           string            `json:"topic"`
	MessageID       string            `json:"messageId"`
	Key             string            `json:"key"`
	Properties      map[string]string `json:"properties"`
	PublishTime     time.Time         `json:"publishTime"`
	EventTime       *time.Time        `json:"eventTime,omitempty"`
	RedeliveryCount uint32            `json:"redeliveryCount"`
	Payload         *string           `json:"payload,omitempty"`
	PayloadBase64   string            `json:"payloadBase64,omitempty"`
}

func printMessage(w io.Writer, format string, msg pulsar.Message) error {
	if format == "text" {
		if _, err := w.Write(msg.Payload()); err != nil {
			return err
		}
		_, err := io.WriteString(w, "\n")
		return err
	}
	m := consumedMessage{
		Topic:           msg.Topic(),
		MessageID:       clientMessageID(msg.ID()),
		Key:             msg.Key(),
		Properties:      msg.Properties(),
		PublishTime:     msg.PublishTime(),
		RedeliveryCount: msg.RedeliveryCount(),
	}
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	if et := msg.EventTime(); !et.IsZero() && et.UnixNano() != 0 {
		m.EventTime = &et
	}
	if p := msg.Payload(); utf8.Valid(p) {
		s := string(p)
		m.Payload = &s
	} else {
		m.PayloadBase64 = base64.StdEncoding.EncodeToString(p)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// clientMessageID formats ledgerId:entryId:partition, plus :batchIndex for
// messages that came in a batch.
func clientMessageID(id pulsar.MessageID) string {
	s := fmt.Sprintf("%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx())
	if id.BatchIdx() >= 0 && id.BatchSize() > 1 {
		s += fmt.Sprintf(":%d", id.BatchIdx())
	}
	return s
}
