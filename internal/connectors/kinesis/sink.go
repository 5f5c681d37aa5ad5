package kinesis

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/messagebus/messagebus/internal/connectors"
)

type sink struct{ s *SinkSettings }

// partitionKey is the message key, or the message id for messages without
// one (spread over the shards). Kinesis takes 1 to 256 characters.
func partitionKey(m pulsar.Message) string {
	k := m.Key()
	if k == "" {
		k = m.ID().String()
	}
	if r := []rune(k); len(r) > 256 {
		k = string(r[:256])
	}
	return k
}

func (k *sink) Run(ctx context.Context, env *connectors.SinkEnv) error {
	cfg, err := k.s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	client := kinesis.NewFromConfig(cfg)
	var name, arn *string
	if k.s.StreamARN != "" {
		arn = aws.String(k.s.StreamARN)
	} else {
		name = aws.String(k.s.StreamName)
	}
	// held are messages waiting for a later request because their key is
	// in the current one: order per key needs one message of a key per
	// request (PutRecords does not stop at a failed entry).
	var held []pulsar.Message
	for {
		batch, keys := make([]pulsar.Message, 0, k.s.BatchSize), map[string]bool{}
		var rest []pulsar.Message
		for _, m := range held {
			if pk := partitionKey(m); len(batch) < k.s.BatchSize && !keys[pk] {
				keys[pk] = true
				batch = append(batch, m)
			} else {
				rest = append(rest, m)
			}
		}
		held = rest
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case m := <-env.Messages:
				keys[partitionKey(m)] = true
				batch = append(batch, m)
			}
		}
	fill:
		for len(batch) < k.s.BatchSize && len(held) < 10*k.s.BatchSize {
			select {
			case m := <-env.Messages:
				if pk := partitionKey(m); keys[pk] {
					held = append(held, m)
				} else {
					keys[pk] = true
					batch = append(batch, m)
				}
			default:
				break fill
			}
		}
		if err := k.put(ctx, env, client, name, arn, batch); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// put writes batch, retrying failed entries, and acknowledges each
// message Kinesis accepted.
func (k *sink) put(ctx context.Context, env *connectors.SinkEnv, client *kinesis.Client, name, arn *string, batch []pulsar.Message) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		in := &kinesis.PutRecordsInput{StreamName: name, StreamARN: arn, Records: make([]types.PutRecordsRequestEntry, len(batch))}
		for i, m := range batch {
			in.Records[i] = types.PutRecordsRequestEntry{Data: m.Payload(), PartitionKey: aws.String(partitionKey(m))}
		}
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		out, err := client.PutRecords(cctx, in)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		failed := batch[:0:0]
		if err == nil {
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					if len(failed) == 0 {
						err = fmt.Errorf("%s: %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
					}
					failed = append(failed, batch[i])
				} else {
					env.Ack(batch[i])
				}
			}
			if len(out.Records) != len(batch) {
				return fmt.Errorf("kinesis put records: %d results for %d records", len(out.Records), len(batch))
			}
			if len(failed) > 0 {
				err = fmt.Errorf("%d of %d records failed, first %w", len(failed), len(batch), err)
			}
		} else {
			failed = batch
		}
		if len(failed) == 0 {
			return nil
		}
		env.WriteFailed(fmt.Errorf("kinesis put records: %w", err))
		if attempt >= k.s.MaxRetries {
			return fmt.Errorf("kinesis put records after %d retries: %w", attempt, err)
		}
		if !connectors.Sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
		batch = failed
	}
}
