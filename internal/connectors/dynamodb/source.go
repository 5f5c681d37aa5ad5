package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/messagebus/messagebus/internal/connectors"
)

// Settings are the dynamodb source's configs: the stream, and
// ShardSettings (initialPosition TRIM_HORIZON, the last 24 hours the
// stream keeps, or LATEST; maxRecords 1-1000).
type Settings struct {
	connectors.AWSSettings
	connectors.ShardSettings
	// StreamArn is the table's stream (required).
	StreamArn string `json:"streamArn"`
}

// Check fills the defaults and refuses bad values.
func (s *Settings) Check() error {
	if err := connectors.Required(s.StreamArn, "streamArn"); err != nil {
		return err
	}
	return s.CheckShards(1000)
}

func init() {
	connectors.Register(&connectors.Builtin{Name: "dynamodb", Kind: connectors.KindSource, SecretKeys: connectors.AWSSecretKeys,
		Description: "A DynamoDB stream to a topic as Debezium-style envelopes (NEW_AND_OLD_IMAGES); checkpoints per shard after the receipts",
		Settings:    func() any { return &Settings{} },
		NewSource:   func(s any) connectors.Source { return &streamSource{s: s.(*Settings)} }})
}

type streamSource struct{ s *Settings }

// api is connectors.ShardAPI over DynamoDB Streams for one session.
type api struct {
	s      *Settings
	client *dynamodbstreams.Client
	name   string // the connector's
	table  string
}

// tableOf takes the table name out of arn:aws:dynamodb:R:A:table/NAME/stream/LABEL.
func tableOf(arn string) string {
	if _, rest, ok := strings.Cut(arn, ":table/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return ""
}

func (d *streamSource) Run(ctx context.Context, env *connectors.SourceEnv) error {
	cfg, err := d.s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	a := &api{s: d.s, client: dynamodbstreams.NewFromConfig(cfg), name: env.Name, table: tableOf(d.s.StreamArn)}
	return connectors.ReadShards(ctx, env, "dynamodb", a, &d.s.ShardSettings)
}

// ListShards pages through DescribeStream.
func (a *api) ListShards(ctx context.Context) ([]connectors.Shard, error) {
	var out []connectors.Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(a.s.StreamArn)}
	for {
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		page, err := a.client.DescribeStream(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("dynamodb describe stream: %w", err)
		}
		if page.StreamDescription == nil {
			return nil, errors.New("dynamodb describe stream: no description")
		}
		for _, s := range page.StreamDescription.Shards {
			out = append(out, connectors.Shard{ID: aws.ToString(s.ShardId), Parent: aws.ToString(s.ParentShardId)})
		}
		if page.StreamDescription.LastEvaluatedShardId == nil {
			return out, nil
		}
		in.ExclusiveStartShardId = page.StreamDescription.LastEvaluatedShardId
	}
}

func (a *api) Iterator(ctx context.Context, shard, after string) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(a.s.StreamArn), ShardId: aws.String(shard)}
	switch {
	case after != "":
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	case a.s.InitialPosition == "LATEST":
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := a.client.GetShardIterator(ctx, in)
	if err != nil {
		return "", fmt.Errorf("dynamodb shard iterator of %s: %w", shard, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

func (a *api) Read(ctx context.Context, shard, it string) (*connectors.ShardBatch, error) {
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := a.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(a.s.MaxRecords)})
	if err != nil {
		var throttled *types.LimitExceededException
		var expired *types.ExpiredIteratorException
		return nil, connectors.ReadError("dynamodb", shard, err, errors.As(err, &throttled), errors.As(err, &expired))
	}
	b := &connectors.ShardBatch{Next: aws.ToString(out.NextShardIterator), CaughtUp: len(out.Records) == 0}
	for _, rec := range out.Records {
		sr := rec.Dynamodb
		if sr == nil {
			continue
		}
		r, err := a.record(shard, rec)
		if err != nil {
			return nil, err
		}
		b.Records = append(b.Records, r)
		b.Last = aws.ToString(sr.SequenceNumber)
	}
	return b, nil
}

// record is a stream record as an envelope.
func (a *api) record(shard string, rec types.Record) (*connectors.Record, error) {
	sr := rec.Dynamodb
	at := aws.ToTime(sr.ApproximateCreationDateTime)
	env := envelope{Before: plainMap(sr.OldImage), After: plainMap(sr.NewImage), Op: ops[rec.EventName], TsMs: time.Now().UnixMilli(),
		Source: source{Version: "messagebus", Connector: "dynamodb", Name: a.name, TsMs: at.UnixMilli(), Table: a.table,
			StreamArn: a.s.StreamArn, Shard: shard, SequenceNumber: aws.ToString(sr.SequenceNumber), EventID: aws.ToString(rec.EventID)}}
	v, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	props := map[string]string{"op": env.Op, "dynamodb.eventID": aws.ToString(rec.EventID),
		"dynamodb.sequenceNumber": aws.ToString(sr.SequenceNumber), "dynamodb.shardId": shard}
	return &connectors.Record{Key: keyJSON(sr.Keys), Value: v, Properties: props, EventTime: at}, nil
}
