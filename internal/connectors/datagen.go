package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// The data-generator source (Pulsar has one by that name) publishes
// {"seq":N,"instance":I} with key N at a fixed rate: a way to try the
// framework and the checkpoint discipline without an external system.
// Its checkpoint is the next sequence number, stored only once all
// records before it have receipts, so a restart neither skips nor (except
// records sent but not checkpointed) repeats.

type datagenSettings struct {
	// RatePerSecond is records per second (0: as fast as the broker takes them).
	RatePerSecond float64 `json:"ratePerSecond"`
	// Count stops after this many records per instance (0: unbounded).
	Count int64 `json:"count"`
	// CheckpointIntervalMs is how often the checkpoint is stored (default 200).
	CheckpointIntervalMs int64 `json:"checkpointIntervalMs"`
}

func (s *datagenSettings) Check() error {
	if s.RatePerSecond < 0 || s.Count < 0 || s.CheckpointIntervalMs < 0 {
		return errors.New("ratePerSecond, count and checkpointIntervalMs must not be negative")
	}
	if s.CheckpointIntervalMs == 0 {
		s.CheckpointIntervalMs = 200
	}
	return nil
}

func init() {
	register(&Builtin{Name: "data-generator", Kind: KindSource, Parallel: true,
		Description: "Generates {\"seq\":N,\"instance\":I} records, key N, at ratePerSecond; checkpoints the next N after receipts",
		Settings:    func() any { return &datagenSettings{} },
		NewSource:   func(s any) Source { return &datagen{s: s.(*datagenSettings)} }})
}

type datagen struct{ s *datagenSettings }

const checkpointNext = "next"

func (d *datagen) Run(ctx context.Context, env *SourceEnv) error {
	next := int64(0)
	if b, err := env.Checkpoints.Get(ctx, checkpointNext); err != nil {
		return err
	} else if b != nil {
		if next, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return err
		}
	}
	var c Committer[int64]
	stored := next
	save := func() error {
		pos, ok, err := c.Committed()
		if err != nil {
			return err
		}
		if ok && pos+1 > stored {
			if err := env.Checkpoints.Put(context.WithoutCancel(ctx), checkpointNext, []byte(strconv.FormatInt(pos+1, 10))); err != nil {
				return err
			}
			stored = pos + 1
		}
		return nil
	}
	defer save()
	tick := time.NewTicker(time.Duration(d.s.CheckpointIntervalMs) * time.Millisecond)
	defer tick.Stop()
	var pace <-chan time.Time
	if d.s.RatePerSecond > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / d.s.RatePerSecond))
		defer t.Stop()
		pace = t.C
	}
	for {
		if d.s.Count > 0 && next >= d.s.Count {
			if err := env.Flush(); err != nil {
				return err
			}
			for c.InFlight() > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
			if err := save(); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}
		if pace != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-pace:
			case <-tick.C:
				if err := save(); err != nil {
					return err
				}
				continue
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				if err := save(); err != nil {
					return err
				}
			default:
			}
		}
		v, _ := json.Marshal(genRecord{Seq: next, Instance: env.Instance}) // a struct keeps seq first
		env.Send(ctx, &Record{Key: strconv.FormatInt(next, 10), Value: v}, c.Add(next))
		next++
	}
}

type genRecord struct {
	Seq      int64 `json:"seq"`
	Instance int   `json:"instance"`
}
