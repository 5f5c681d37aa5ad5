package connectors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The sqs source receives from a queue, publishes each message to the
// topic and deletes it from the queue only after the receipt. A batch
// whose receipts take long has its visibility timeout extended, so the
// queue does not hand the messages to someone else meanwhile. A FIFO
// queue's message group becomes the message key, and a batch is sent in
// the queue's order, so order per group is kept. Duplicates: a message
// sent but not deleted before a crash is received again (the property
// sqs.messageId identifies it).

type sqsSourceSettings struct {
	AWSSettings
	QueueURL string `json:"queueUrl"`
	// MaxMessages per receive (1-10, default 10); WaitTimeSeconds of the
	// long poll (0-20, default 10).
	MaxMessages     int32 `json:"maxMessages"`
	WaitTimeSeconds int32 `json:"waitTimeSeconds"`
	// VisibilityTimeoutSeconds is set on received messages and renewed
	// every half of it while their receipts are awaited (default 30).
	VisibilityTimeoutSeconds int32 `json:"visibilityTimeoutSeconds"`
}

func (s *sqsSourceSettings) Check() error {
	if err := Required(s.QueueURL, "queueUrl"); err != nil {
		return err
	}
	if err := IntRange(&s.MaxMessages, "maxMessages", 10, 1, 10); err != nil {
		return err
	}
	if err := IntRange(&s.WaitTimeSeconds, "waitTimeSeconds", 10, 0, 20); err != nil {
		return err
	}
	return IntMin(&s.VisibilityTimeoutSeconds, "visibilityTimeoutSeconds", 30, 2)
}

func init() {
	register(&Builtin{Name: "sqs", Kind: KindSource, Parallel: true, SecretKeys: AWSSecretKeys,
		Description: "Amazon SQS queue to a topic; deletes from the queue after the receipt",
		Settings:    func() any { return &sqsSourceSettings{} },
		NewSource:   func(s any) Source { return &sqsSource{s: s.(*sqsSourceSettings)} }})
}

type sqsSource struct{ s *sqsSourceSettings }

func (q *sqsSource) Run(ctx context.Context, env *SourceEnv) error {
	cfg, err := q.s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	client := sqs.NewFromConfig(cfg)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, CallTimeout+time.Duration(q.s.WaitTimeSeconds)*time.Second)
		out, err := client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.s.QueueURL),
			MaxNumberOfMessages: q.s.MaxMessages, WaitTimeSeconds: q.s.WaitTimeSeconds,
			VisibilityTimeout:           q.s.VisibilityTimeoutSeconds,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sqs receive: %w", err)
		}
		if len(out.Messages) == 0 {
			continue
		}
		if err := q.forward(ctx, env, client, out.Messages); err != nil {
			return err
		}
	}
	return nil
}

// forward sends a batch, waits for the receipts (extending visibility)
// and deletes what was stored.
func (q *sqsSource) forward(ctx context.Context, env *SourceEnv, client *sqs.Client, msgs []sqstypes.Message) error {
	recs := make([]*Record, len(msgs))
	for i, m := range msgs {
		rec := &Record{Value: []byte(aws.ToString(m.Body)), Properties: map[string]string{"sqs.messageId": aws.ToString(m.MessageId)}}
		for k, v := range m.MessageAttributes {
			if v.StringValue != nil {
				rec.Properties[k] = *v.StringValue
			}
		}
		if g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]; g != "" {
			rec.Key = g
		}
		if ts := m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)]; ts != "" {
			if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
				rec.EventTime = time.UnixMilli(ms)
			}
		}
		recs[i] = rec
	}
	done, errs := SendBatch(ctx, env, recs)
	extend := time.NewTicker(time.Duration(q.s.VisibilityTimeoutSeconds) * time.Second / 2)
	defer extend.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-extend.C:
			var entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry
			for i, m := range msgs {
				entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: q.s.VisibilityTimeoutSeconds})
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
			_, err := client.ChangeMessageVisibilityBatch(cctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.s.QueueURL), Entries: entries})
			cancel()
			if err != nil {
				env.Log.Warn("sqs visibility not extended", "error", err)
			}
		}
	}
	var del []sqstypes.DeleteMessageBatchRequestEntry
	var firstErr error
	for i, m := range msgs {
		if errs[i] != nil {
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	if len(del) > 0 {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
		out, err := client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.s.QueueURL), Entries: del})
		cancel()
		if err != nil {
			return fmt.Errorf("sqs delete: %w", err)
		}
		if len(out.Failed) > 0 {
			env.Log.Warn("sqs messages not deleted: they will be received and sent again", "failed", len(out.Failed))
		}
	}
	if firstErr != nil {
		return fmt.Errorf("send: %w (the unsent messages stay in the queue)", firstErr)
	}
	return nil
}
