package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/messagebus/messagebus/internal/connectors"
)

// Settings are the dynamodb source's configs.
type Settings struct {
	connectors.AWSSettings
	// StreamArn is the table's stream (required).
	StreamArn string `json:"streamArn"`
	// InitialPosition for shards without a checkpoint: TRIM_HORIZON (the
	// default: the last 24 hours the stream keeps) or LATEST.
	InitialPosition string `json:"initialPosition"`
	// MaxRecords per GetRecords (1-1000, default 1000).
	MaxRecords int32 `json:"maxRecords"`
	// PollIntervalMs is the pause after an empty GetRecords (default 500).
	PollIntervalMs int64 `json:"pollIntervalMs"`
	// ShardSyncIntervalMs is how often the shards are listed again
	// (default 10000; a shard's end triggers it too).
	ShardSyncIntervalMs int64 `json:"shardSyncIntervalMs"`
}

// Check fills the defaults and refuses bad values.
func (s *Settings) Check() error {
	if s.StreamArn == "" {
		return errors.New("streamArn is required")
	}
	switch s.InitialPosition {
	case "":
		s.InitialPosition = "TRIM_HORIZON"
	case "TRIM_HORIZON", "LATEST":
	default:
		return errors.New("initialPosition: TRIM_HORIZON or LATEST")
	}
	if s.MaxRecords == 0 {
		s.MaxRecords = 1000
	}
	if s.MaxRecords < 1 || s.MaxRecords > 1000 {
		return errors.New("maxRecords: 1 to 1000")
	}
	if s.PollIntervalMs == 0 {
		s.PollIntervalMs = 500
	}
	if s.ShardSyncIntervalMs == 0 {
		s.ShardSyncIntervalMs = 10000
	}
	if s.PollIntervalMs < 0 || s.ShardSyncIntervalMs < 0 {
		return errors.New("pollIntervalMs and shardSyncIntervalMs must not be negative")
	}
	return nil
}

func init() {
	connectors.Register(&connectors.Builtin{Name: "dynamodb", Kind: connectors.KindSource, SecretKeys: connectors.AWSSecretKeys,
		Description: "A DynamoDB stream to a topic as Debezium-style envelopes (NEW_AND_OLD_IMAGES); checkpoints per shard after the receipts",
		Settings:    func() any { return &Settings{} },
		NewSource:   func(s any) connectors.Source { return &streamSource{s: s.(*Settings)} }})
}

const shardEnd = "SHARD_END"

func shardKey(id string) string { return "shard/" + id }

type streamSource struct{ s *Settings }

type reader struct {
	s      *Settings
	client *dynamodbstreams.Client
	env    *connectors.SourceEnv
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
	r := &reader{s: d.s, client: dynamodbstreams.NewFromConfig(cfg), env: env, table: tableOf(d.s.StreamArn)}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	defer func() { cancel(); wg.Wait() }()
	fail := func(err error) {
		errOnce.Do(func() { failure = err })
		cancel()
	}
	ended := make(chan string, 16)
	running, done := map[string]bool{}, map[string]bool{}
	resync := time.NewTicker(time.Duration(d.s.ShardSyncIntervalMs) * time.Millisecond)
	defer resync.Stop()
	for {
		shards, err := r.listShards(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return failure
			}
			return err
		}
		cps := map[string]string{}
		for _, s := range shards {
			if running[s.ID] || done[s.ID] {
				continue
			}
			b, err := env.Checkpoints.Get(ctx, shardKey(s.ID))
			if err != nil {
				if ctx.Err() != nil {
					return failure
				}
				return err
			}
			if string(b) == shardEnd {
				done[s.ID] = true
			}
			cps[s.ID] = string(b)
		}
		for _, id := range connectors.ReadyShards(shards, running, done) {
			running[id] = true
			wg.Add(1)
			go func(id, cp string) {
				defer wg.Done()
				if err := r.readShard(ctx, id, cp); err != nil {
					fail(err)
					return
				}
				select {
				case ended <- id:
				case <-ctx.Done():
				}
			}(id, cps[id])
		}
		select {
		case <-ctx.Done():
			return failure
		case id := <-ended:
			delete(running, id)
			done[id] = true
		case <-resync.C:
		}
	}
}

// listShards pages through DescribeStream.
func (r *reader) listShards(ctx context.Context) ([]connectors.Shard, error) {
	var out []connectors.Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(r.s.StreamArn)}
	for {
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		page, err := r.client.DescribeStream(cctx, in)
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

func (r *reader) iterator(ctx context.Context, shard, after string) (*string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(r.s.StreamArn), ShardId: aws.String(shard)}
	switch {
	case after != "":
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	case r.s.InitialPosition == "LATEST":
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := r.client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("dynamodb shard iterator of %s: %w", shard, err)
	}
	return out.ShardIterator, nil
}

func (r *reader) putCheckpoint(ctx context.Context, shard, v string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectors.CallTimeout)
	defer cancel()
	if err := r.env.Checkpoints.Put(ctx, shardKey(shard), []byte(v)); err != nil {
		return fmt.Errorf("checkpoint of shard %s: %w", shard, err)
	}
	return nil
}

// readShard reads a shard from after its checkpoint to its end (nil) or
// the session's.
func (r *reader) readShard(ctx context.Context, shard, last string) error {
	it, err := r.iterator(ctx, shard, last)
	if err != nil {
		return err
	}
	poll := time.Duration(r.s.PollIntervalMs) * time.Millisecond
	backoff := poll
	for ctx.Err() == nil {
		if it == nil {
			// A closed shard read to its end: its children may start.
			return r.putCheckpoint(ctx, shard, shardEnd)
		}
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		out, err := r.client.GetRecords(cctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(r.s.MaxRecords)})
		cancel()
		var expired *types.ExpiredIteratorException
		var throttled *types.LimitExceededException
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &throttled):
			backoff = min(2*backoff+time.Millisecond, 10*time.Second)
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		case errors.As(err, &expired):
			if it, err = r.iterator(ctx, shard, last); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("dynamodb get records of %s: %w", shard, err)
		}
		backoff = poll
		if len(out.Records) > 0 {
			if err := r.forward(ctx, shard, out.Records); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			last = aws.ToString(out.Records[len(out.Records)-1].Dynamodb.SequenceNumber)
			if err := r.putCheckpoint(ctx, shard, last); err != nil {
				return err
			}
		}
		it = out.NextShardIterator
		if len(out.Records) == 0 && it != nil && !sleep(ctx, poll) {
			return nil
		}
	}
	return nil
}

// forward sends one GetRecords batch and waits for every receipt.
func (r *reader) forward(ctx context.Context, shard string, recs []types.Record) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	done := func(err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		wg.Done()
	}
	for _, rec := range recs {
		sr := rec.Dynamodb
		if sr == nil {
			continue
		}
		at := aws.ToTime(sr.ApproximateCreationDateTime)
		env := envelope{Before: plainMap(sr.OldImage), After: plainMap(sr.NewImage), Op: ops[rec.EventName], TsMs: time.Now().UnixMilli(),
			Source: source{Version: "messagebus", Connector: "dynamodb", Name: r.env.Name, TsMs: at.UnixMilli(), Table: r.table,
				StreamArn: r.s.StreamArn, Shard: shard, SequenceNumber: aws.ToString(sr.SequenceNumber), EventID: aws.ToString(rec.EventID)}}
		v, err := json.Marshal(env)
		if err != nil {
			return err
		}
		props := map[string]string{"op": env.Op, "dynamodb.eventID": aws.ToString(rec.EventID),
			"dynamodb.sequenceNumber": aws.ToString(sr.SequenceNumber), "dynamodb.shardId": shard}
		wg.Add(1)
		r.env.Send(ctx, &connectors.Record{Key: keyJSON(sr.Keys), Value: v, Properties: props, EventTime: at}, done)
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-ctx.Done():
		return nil
	}
	if firstErr != nil {
		return fmt.Errorf("send of shard %s records: %w (they are read again from the checkpoint)", shard, firstErr)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
