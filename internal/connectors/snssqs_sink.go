package connectors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The sns and sqs sinks write each message to an SNS topic or an SQS queue
// (batches of up to 10 for SQS), message properties as string message
// attributes, and acknowledge a message after AWS accepted it. Failed
// entries are retried (3 times, with backoff); then the session ends and
// the unacknowledged messages come again. For a FIFO target the message
// key is the message group (default "default") and the message id the
// deduplication id, so redeliveries are dropped within SQS's 5-minute
// deduplication window.

type snsSinkSettings struct {
	AWSSettings
	TopicArn string `json:"topicArn"`
}

func (s *snsSinkSettings) Check() error {
	return Required(s.TopicArn, "topicArn")
}

type sqsSinkSettings struct {
	AWSSettings
	QueueURL string `json:"queueUrl"`
	// BatchSize is messages per SendMessageBatch (1-10, default 10).
	BatchSize int `json:"batchSize"`
}

func (s *sqsSinkSettings) Check() error {
	if err := Required(s.QueueURL, "queueUrl"); err != nil {
		return err
	}
	return IntRange(&s.BatchSize, "batchSize", 10, 1, 10)
}

func init() {
	register(&Builtin{Name: "sns", Kind: KindSink, Parallel: true, SecretKeys: AWSSecretKeys,
		Description: "Publishes messages to an Amazon SNS topic; acknowledges after SNS accepted them",
		Settings:    func() any { return &snsSinkSettings{} },
		NewSink:     func(s any) Sink { return &awsSink{sns: s.(*snsSinkSettings)} }})
	register(&Builtin{Name: "sqs", Kind: KindSink, Parallel: true, SecretKeys: AWSSecretKeys,
		Description: "Sends messages to an Amazon SQS queue in batches; acknowledges after SQS accepted them",
		Settings:    func() any { return &sqsSinkSettings{} },
		NewSink:     func(s any) Sink { return &awsSink{sqs: s.(*sqsSinkSettings)} }})
}

type awsSink struct {
	sns *snsSinkSettings
	sqs *sqsSinkSettings
}

func attrName(k string) string {
	// SQS/SNS attribute names: letters, digits, _ - . (no leading "aws.").
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, k)
}

func (a *awsSink) Run(ctx context.Context, env *SinkEnv) error {
	var base AWSSettings
	batch := 10
	if a.sns != nil {
		base, batch = a.sns.AWSSettings, 1
	} else {
		base, batch = a.sqs.AWSSettings, a.sqs.BatchSize
	}
	cfg, err := base.AWSConfig(ctx)
	if err != nil {
		return err
	}
	var write func(ctx context.Context, msgs []pulsar.Message) ([]bool, error)
	if a.sns != nil {
		client := sns.NewFromConfig(cfg)
		fifo := strings.HasSuffix(a.sns.TopicArn, ".fifo")
		write = func(ctx context.Context, msgs []pulsar.Message) ([]bool, error) {
			m := msgs[0]
			in := &sns.PublishInput{TopicArn: aws.String(a.sns.TopicArn), Message: aws.String(string(m.Payload())),
				MessageAttributes: map[string]snstypes.MessageAttributeValue{}}
			for k, v := range m.Properties() {
				in.MessageAttributes[attrName(k)] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
			}
			if fifo {
				in.MessageGroupId, in.MessageDeduplicationId = aws.String(groupOf(m)), aws.String(dedupID(m))
			}
			_, err := client.Publish(ctx, in)
			return []bool{err == nil}, err
		}
	} else {
		client := sqs.NewFromConfig(cfg)
		fifo := strings.HasSuffix(a.sqs.QueueURL, ".fifo")
		write = func(ctx context.Context, msgs []pulsar.Message) ([]bool, error) {
			in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(a.sqs.QueueURL)}
			for i, m := range msgs {
				e := sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(m.Payload())),
					MessageAttributes: map[string]sqstypes.MessageAttributeValue{}}
				for k, v := range m.Properties() {
					e.MessageAttributes[attrName(k)] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
				}
				if fifo {
					e.MessageGroupId, e.MessageDeduplicationId = aws.String(groupOf(m)), aws.String(dedupID(m))
				}
				in.Entries = append(in.Entries, e)
			}
			out, err := client.SendMessageBatch(ctx, in)
			ok := make([]bool, len(msgs))
			if err != nil {
				return ok, err
			}
			// Every entry not listed as failed was accepted (goaws, for
			// one, does not echo the ids of the successful ones).
			for i := range ok {
				ok[i] = true
			}
			for _, f := range out.Failed {
				if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i < len(ok) {
					ok[i] = false
				}
			}
			if len(out.Failed) > 0 {
				err = fmt.Errorf("%d of %d entries failed: %s", len(out.Failed), len(msgs), aws.ToString(out.Failed[0].Message))
			}
			return ok, err
		}
	}
	pending := make([]pulsar.Message, 0, batch)
	for {
		pending = pending[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-env.Messages:
			pending = append(pending, m)
		}
	fill:
		for len(pending) < batch {
			select {
			case m := <-env.Messages:
				pending = append(pending, m)
			default:
				break fill
			}
		}
		backoff := 200 * time.Millisecond
		for attempt := 0; ; attempt++ {
			wctx, cancel := context.WithTimeout(ctx, CallTimeout)
			ok, err := write(wctx, pending)
			cancel()
			rest := pending[:0]
			for i, m := range pending {
				if ok[i] {
					env.Ack(m)
				} else {
					rest = append(rest, m)
				}
			}
			pending = rest
			if len(pending) == 0 {
				break
			}
			if err == nil {
				err = errors.New("entries not accepted")
			}
			env.WriteFailed(err)
			if attempt == 3 || ctx.Err() != nil {
				return fmt.Errorf("write: %w", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff *= 2
		}
	}
}

func groupOf(m pulsar.Message) string {
	if m.Key() != "" {
		return m.Key()
	}
	return "default"
}

func dedupID(m pulsar.Message) string {
	id := m.ID()
	return fmt.Sprintf("%d-%d-%d-%d", id.LedgerID(), id.EntryID(), id.BatchIdx(), id.PartitionIdx())
}
