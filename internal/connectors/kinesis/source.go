package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/messagebus/messagebus/internal/connectors"
)

// Checkpoint keys: "shard/<id>" holds the sequence number of the last
// record stored by the broker, or shardEnd once a closed shard was read to
// its end; startKey holds when a LATEST source first started (Unix ms).
const (
	shardEnd = "SHARD_END"
	startKey = "start"
)

func shardKey(id string) string { return "shard/" + id }

type source struct{ s *SourceSettings }

// reader is one session's state.
type reader struct {
	s      *SourceSettings
	client *kinesis.Client
	env    *connectors.SourceEnv
	start  time.Time // LATEST: the source's first start
}

func (k *source) Run(ctx context.Context, env *connectors.SourceEnv) error {
	cfg, err := k.s.AWSConfig(ctx)
	if err != nil {
		return err
	}
	r := &reader{s: k.s, client: kinesis.NewFromConfig(cfg), env: env}
	if k.s.InitialPosition == "LATEST" {
		if r.start, err = r.startTime(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	fail := func(err error) {
		errOnce.Do(func() { failure = err })
		cancel()
	}
	ended := make(chan string, 16)
	running, done := map[string]bool{}, map[string]bool{}
	resync := time.NewTicker(time.Duration(k.s.ShardSyncIntervalMs) * time.Millisecond)
	defer resync.Stop()
	defer func() { cancel(); wg.Wait() }()
	for {
		shards, err := r.listShards(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return failure
			}
			return err
		}
		// Shards ended in an earlier session are in the checkpoints.
		cps := map[string]string{}
		for _, s := range shards {
			if running[s.ID] || done[s.ID] {
				continue
			}
			cp, err := r.checkpoint(ctx, s.ID)
			if err != nil {
				if ctx.Err() != nil {
					return failure
				}
				return err
			}
			if cp == shardEnd {
				done[s.ID] = true
			}
			cps[s.ID] = cp
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
			env.Log.Info("kinesis shard read to its end", "shard", id)
		case <-resync.C:
		}
	}
}

// startTime returns when the source first started, storing it the first time.
func (r *reader) startTime(ctx context.Context) (time.Time, error) {
	b, err := r.env.Checkpoints.Get(ctx, startKey)
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
	if err := r.env.Checkpoints.Put(ctx, startKey, []byte(strconv.FormatInt(now.UnixMilli(), 10))); err != nil {
		return time.Time{}, err
	}
	return now, nil
}

func (r *reader) checkpoint(ctx context.Context, shard string) (string, error) {
	b, err := r.env.Checkpoints.Get(ctx, shardKey(shard))
	return string(b), err
}

func (r *reader) putCheckpoint(ctx context.Context, shard, v string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectors.CallTimeout)
	defer cancel()
	if err := r.env.Checkpoints.Put(ctx, shardKey(shard), []byte(v)); err != nil {
		return fmt.Errorf("checkpoint of shard %s: %w", shard, err)
	}
	return nil
}

func (r *reader) stream() (name, arn *string) {
	if r.s.StreamARN != "" {
		return nil, aws.String(r.s.StreamARN)
	}
	return aws.String(r.s.StreamName), nil
}

// listShards lists every shard the stream keeps, closed ones included.
func (r *reader) listShards(ctx context.Context) ([]connectors.Shard, error) {
	var out []connectors.Shard
	in := &kinesis.ListShardsInput{}
	in.StreamName, in.StreamARN = r.stream()
	for {
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		page, err := r.client.ListShards(cctx, in)
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

func (r *reader) iterator(ctx context.Context, shard, after string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{ShardId: aws.String(shard)}
	in.StreamName, in.StreamARN = r.stream()
	switch {
	case after != "":
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	case r.s.InitialPosition == "LATEST":
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(r.start)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	ctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	out, err := r.client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("kinesis shard iterator of %s: %w", shard, err)
	}
	return out.ShardIterator, nil
}

// readShard reads one shard from after its checkpoint until the shard
// ends (nil) or the session does.
func (r *reader) readShard(ctx context.Context, shard, last string) error {
	it, err := r.iterator(ctx, shard, last)
	if err != nil {
		return err
	}
	poll := time.Duration(r.s.PollIntervalMs) * time.Millisecond
	backoff := poll
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		out, err := r.client.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(r.s.MaxRecords)})
		cancel()
		var throttled *types.ProvisionedThroughputExceededException
		var expired *types.ExpiredIteratorException
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &throttled):
			// Kinesis's per-shard read limit: wait longer, same iterator.
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
			return fmt.Errorf("kinesis get records of %s: %w", shard, err)
		}
		backoff = poll
		if len(out.Records) > 0 {
			if err := r.forward(ctx, shard, out.Records); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			last = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
			if err := r.putCheckpoint(ctx, shard, last); err != nil {
				return err
			}
		}
		if out.NextShardIterator == nil {
			// A closed shard read to its end: its children may start.
			return r.putCheckpoint(ctx, shard, shardEnd)
		}
		it = out.NextShardIterator
		if len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0 {
			if !sleep(ctx, poll) {
				return nil
			}
		}
	}
	return nil
}

// forward sends the records of one GetRecords and waits for all their
// receipts (nil also when the session ends first: nothing is then
// checkpointed).
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
		props := map[string]string{"kinesis.shardId": shard, "kinesis.sequenceNumber": aws.ToString(rec.SequenceNumber)}
		at := aws.ToTime(rec.ApproximateArrivalTimestamp)
		users, err := deaggregate(rec.Data)
		if err != nil {
			wg.Add(1)
			r.env.Send(ctx, &connectors.Record{Key: aws.ToString(rec.PartitionKey), Value: rec.Data, Properties: props, EventTime: at}, done)
			continue
		}
		for i, u := range users {
			p := make(map[string]string, len(props)+1)
			for k, v := range props {
				p[k] = v
			}
			p["kinesis.subSequenceNumber"] = strconv.Itoa(i)
			wg.Add(1)
			r.env.Send(ctx, &connectors.Record{Key: u.PartitionKey, Value: u.Data, Properties: p, EventTime: at}, done)
		}
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
