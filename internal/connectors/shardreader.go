package connectors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ShardSettings are the keys common to sources that read a sharded
// stream (Kinesis, DynamoDB Streams); embed it in a type's settings.
type ShardSettings struct {
	// InitialPosition for shards without a checkpoint: TRIM_HORIZON (the
	// default: every record the stream keeps) or LATEST.
	InitialPosition string `json:"initialPosition"`
	// MaxRecords per GetRecords (default and most: the service's limit).
	MaxRecords int32 `json:"maxRecords"`
	// PollIntervalMs is the pause after a read that found a shard caught
	// up (default 500).
	PollIntervalMs int64 `json:"pollIntervalMs"`
	// ShardSyncIntervalMs is how often the shard list is read again to
	// find new shards (default 10000; a shard's end triggers it too).
	ShardSyncIntervalMs int64 `json:"shardSyncIntervalMs"`
}

// CheckShards fills the defaults and refuses bad values; maxRecords is
// the service's limit per GetRecords.
func (s *ShardSettings) CheckShards(maxRecords int32) error {
	if err := Choice(&s.InitialPosition, "initialPosition", "TRIM_HORIZON", "LATEST"); err != nil {
		return err
	}
	if err := IntRange(&s.MaxRecords, "maxRecords", maxRecords, 1, maxRecords); err != nil {
		return err
	}
	if err := IntMin(&s.PollIntervalMs, "pollIntervalMs", 500, 0); err != nil {
		return err
	}
	return IntMin(&s.ShardSyncIntervalMs, "shardSyncIntervalMs", 10000, 0)
}

// ShardAPI is one stream service's calls, for ReadShards.
type ShardAPI interface {
	// ListShards lists every shard the stream keeps, closed ones included.
	ListShards(ctx context.Context) ([]Shard, error)
	// Iterator starts reading shard after the sequence number after, or
	// at the initial position when after is "".
	Iterator(ctx context.Context, shard, after string) (string, error)
	// Read is one GetRecords. It returns ErrThrottled or
	// ErrIteratorExpired for those conditions.
	Read(ctx context.Context, shard, iterator string) (*ShardBatch, error)
}

// ShardBatch is what one GetRecords returned.
type ShardBatch struct {
	Records []*Record
	// Last is the sequence number of the last record read ("" when none).
	Last string
	// Next is the next iterator; "" once a closed shard was read to its end.
	Next string
	// CaughtUp asks for a pause of pollIntervalMs before the next read.
	CaughtUp bool
}

// Errors a ShardAPI's Read returns.
var (
	ErrThrottled       = errors.New("read throttled")
	ErrIteratorExpired = errors.New("shard iterator expired")
)

// ReadError is the error of a failed Read: ErrThrottled, ErrIteratorExpired
// or err with the service and shard.
func ReadError(service, shard string, err error, throttled, expired bool) error {
	switch {
	case throttled:
		return ErrThrottled
	case expired:
		return ErrIteratorExpired
	}
	return fmt.Errorf("%s get records of %s: %w", service, shard, err)
}

// Checkpoint keys: "shard/<id>" holds the sequence number of the last
// record stored by the broker, or ShardEnd once a closed shard was read to
// its end.
const ShardEnd = "SHARD_END"

func shardKey(id string) string { return "shard/" + id }

// ReadShards reads every shard of a stream (parents before children),
// sends the records and checkpoints each shard after the receipts of a
// read, until ctx ends (nil) or a read, send or checkpoint fails.
// service names the stream type in logs and errors.
func ReadShards(ctx context.Context, env *SourceEnv, service string, api ShardAPI, s *ShardSettings) error {
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
	sr := &shardReader{env: env, service: service, api: api, s: s}
	ended := make(chan string, 16)
	running, done := map[string]bool{}, map[string]bool{}
	resync := time.NewTicker(time.Duration(s.ShardSyncIntervalMs) * time.Millisecond)
	defer resync.Stop()
	for {
		shards, err := api.ListShards(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return failure
			}
			return err
		}
		// Shards ended in an earlier session are in the checkpoints.
		cps := map[string]string{}
		for _, sh := range shards {
			if running[sh.ID] || done[sh.ID] {
				continue
			}
			b, err := env.Checkpoints.Get(ctx, shardKey(sh.ID))
			if err != nil {
				if ctx.Err() != nil {
					return failure
				}
				return err
			}
			if string(b) == ShardEnd {
				done[sh.ID] = true
			}
			cps[sh.ID] = string(b)
		}
		for _, id := range ReadyShards(shards, running, done) {
			running[id] = true
			wg.Add(1)
			go func(id, cp string) {
				defer wg.Done()
				if err := sr.read(ctx, id, cp); err != nil {
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
			env.Log.Info("shard read to its end", "service", service, "shard", id)
		case <-resync.C:
		}
	}
}

type shardReader struct {
	env     *SourceEnv
	service string
	api     ShardAPI
	s       *ShardSettings
}

func (r *shardReader) putCheckpoint(ctx context.Context, shard, v string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
	defer cancel()
	if err := r.env.Checkpoints.Put(ctx, shardKey(shard), []byte(v)); err != nil {
		return fmt.Errorf("checkpoint of shard %s: %w", shard, err)
	}
	return nil
}

// read reads one shard from after its checkpoint until the shard ends
// (nil) or the session does.
func (r *shardReader) read(ctx context.Context, shard, last string) error {
	it, err := r.api.Iterator(ctx, shard, last)
	if err != nil {
		return err
	}
	poll := time.Duration(r.s.PollIntervalMs) * time.Millisecond
	backoff := poll
	for ctx.Err() == nil {
		if it == "" {
			// A closed shard with nothing after last: its children may start.
			return r.putCheckpoint(ctx, shard, ShardEnd)
		}
		b, err := r.api.Read(ctx, shard, it)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrThrottled):
			// The service's per-shard read limit: wait longer, same iterator.
			backoff = min(2*backoff+time.Millisecond, 10*time.Second)
			if !Sleep(ctx, backoff) {
				return nil
			}
			continue
		case errors.Is(err, ErrIteratorExpired):
			if it, err = r.api.Iterator(ctx, shard, last); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		backoff = poll
		if len(b.Records) > 0 {
			errs, ok := SendAll(ctx, r.env, b.Records)
			if !ok {
				return nil // the session ended first: nothing is checkpointed
			}
			if err := FirstError(errs); err != nil {
				return fmt.Errorf("send of %s shard %s records: %w (they are read again from the checkpoint)", r.service, shard, err)
			}
		}
		if b.Last != "" {
			last = b.Last
			if err := r.putCheckpoint(ctx, shard, last); err != nil {
				return err
			}
		}
		it = b.Next
		if it != "" && b.CaughtUp && !Sleep(ctx, poll) {
			return nil
		}
	}
	return nil
}

// SendBatch sends recs; the returned channel is closed once every
// receipt came, and errs[i] is then record i's outcome.
func SendBatch(ctx context.Context, env *SourceEnv, recs []*Record) (all <-chan struct{}, errs []error) {
	var wg sync.WaitGroup
	errs = make([]error, len(recs))
	wg.Add(len(recs))
	for i, rec := range recs {
		env.Send(ctx, rec, func(err error) { errs[i] = err; wg.Done() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done, errs
}

// SendAll sends recs and waits for their receipts; ok is false when ctx
// ended first.
func SendAll(ctx context.Context, env *SourceEnv, recs []*Record) (errs []error, ok bool) {
	all, errs := SendBatch(ctx, env, recs)
	select {
	case <-all:
		return errs, true
	case <-ctx.Done():
		return nil, false
	}
}

// FirstError is the first non-nil error of errs.
func FirstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Sleep waits d; false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
