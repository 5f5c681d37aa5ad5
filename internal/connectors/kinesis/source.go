package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/messagebus/messagebus/internal/connectors"
)

// startKey is the checkpoint holding when a LATEST source first started
// (Unix ms); the shards' checkpoints are connectors.ReadShards'.
const startKey = "start"

type source struct{ s *SourceSettings }

// api is connectors.ShardAPI over Kinesis for one session.
type api struct {
	s      *SourceSettings
	client *kinesis.Client
	start  time.Time // LATEST: the source's first start
}

func (k *source) Run(ctx context.Context, env *connectors.SourceEnv) error {
	cfg, err := k.s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	a := &api{s: k.s, client: kinesis.NewFromConfig(cfg)}
	if k.s.InitialPosition == "LATEST" {
		if a.start, err = startTime(ctx, env); err != nil {
			return err
		}
	}
	return connectors.ReadShards(ctx, env, "kinesis", a, &k.s.ShardSettings)
}

// startTime returns when the source first started, storing it the first time.
func startTime(ctx context.Context, env *connectors.SourceEnv) (time.Time, error) {
	b, err := env.Checkpoints.Get(ctx, startKey)
	if err != nil {
		return time.Time{}, err
	}
	if b != nil {
		ms, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("kinesis start checkpoint %q: %w", b, err)
		}
		return time.UnixMilli(ms), nil
	}
	now := time.Now()
	if err := env.Checkpoints.Put(ctx, startKey, []byte(strconv.FormatInt(now.UnixMilli(), 10))); err != nil {
		return time.Time{}, err
	}
	return now, nil
}

func (a *api) stream() (name, arn *string) {
	if a.s.StreamARN != "" {
		return nil, aws.String(a.s.StreamARN)
	}
	return aws.String(a.s.StreamName), nil
}

func (a *api) ListShards(ctx context.Context) ([]connectors.Shard, error) {
	var out []connectors.Shard
	in := &kinesis.ListShardsInput{}
	in.StreamName, in.StreamARN = a.stream()
	for {
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		page, err := a.client.ListShards(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("kinesis list shards: %w", err)
		}
		for _, s := range page.Shards {
			out = append(out, connectors.Shard{ID: aws.ToString(s.ShardId), Parent: aws.ToString(s.ParentShardId),
				AdjacentParent: aws.ToString(s.AdjacentParentShardId)})
		}
		if page.NextToken == nil {
			return out, nil
		}
		// With a token the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

func (a *api) Iterator(ctx context.Context, shard, after string) (string, error) {
	in := &kinesis.GetShardIteratorInput{ShardId: aws.String(shard)}
	in.StreamName, in.StreamARN = a.stream()
	switch {
	case after != "":
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	case a.s.InitialPosition == "LATEST":
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(a.start)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := a.client.GetShardIterator(ctx, in)
	if err != nil {
		return "", fmt.Errorf("kinesis shard iterator of %s: %w", shard, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

func (a *api) Read(ctx context.Context, shard, it string) (*connectors.ShardBatch, error) {
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := a.client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(a.s.MaxRecords)})
	if err != nil {
		var throttled *types.ProvisionedThroughputExceededException
		var expired *types.ExpiredIteratorException
		return nil, connectors.ReadError("kinesis", shard, err, errors.As(err, &throttled), errors.As(err, &expired))
	}
	b := &connectors.ShardBatch{Next: aws.ToString(out.NextShardIterator),
		CaughtUp: len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0}
	for _, rec := range out.Records {
		b.Records = append(b.Records, records(shard, rec)...)
		b.Last = aws.ToString(rec.SequenceNumber)
	}
	return b, nil
}

// records are a Kinesis record's messages: its KPL user records, or the
// record itself when it is not an aggregate.
func records(shard string, rec types.Record) []*connectors.Record {
	props := map[string]string{"kinesis.shardId": shard, "kinesis.sequenceNumber": aws.ToString(rec.SequenceNumber)}
	at := aws.ToTime(rec.ApproximateArrivalTimestamp)
	users, err := deaggregate(rec.Data)
	if err != nil {
		return []*connectors.Record{{Key: aws.ToString(rec.PartitionKey), Value: rec.Data, Properties: props, EventTime: at}}
	}
	out := make([]*connectors.Record, 0, len(users))
	for i, u := range users {
		p := make(map[string]string, len(props)+1)
		for k, v := range props {
			p[k] = v
		}
		p["kinesis.subSequenceNumber"] = strconv.Itoa(i)
		out = append(out, &connectors.Record{Key: u.PartitionKey, Value: u.Data, Properties: p, EventTime: at})
	}
	return out
}
