package broker

import (
	"context"

	"github.com/messagebus/messagebus/internal/pace"

	"golang.org/x/time/rate"
)

// compactionThrottle paces the reads of one compaction: the rate limit
// (Config.CompactionMaxRate) shared by every compaction of the broker, and
// pauses as long as each read step ran while producers publish (unless
// Config.CompactionNoYield); nil when neither applies.
func (b *Broker) compactionThrottle() func(context.Context, int) error {
	var p *pace.Pacer
	if !b.cfg.CompactionNoYield {
		p = pace.New(b.activity.Busy)
	}
	limit := b.compactionLimit()
	if p == nil && limit == nil {
		return nil
	}
	return func(ctx context.Context, n int) error {
		if err := p.Step(ctx); err != nil {
			return err
		}
		if limit != nil {
			return limit(ctx, n)
		}
		return nil
	}
}

// compactionLimit is the rate limit of compaction reads, nil without one.
func (b *Broker) compactionLimit() func(context.Context, int) error {
	if b.cfg.CompactionMaxRate <= 0 {
		return nil
	}
	b.compactionLimOnce.Do(func() {
		// A burst of an eighth of a second's budget, at least one read.
		b.compactionLim = rate.NewLimiter(rate.Limit(b.cfg.CompactionMaxRate), int(max(b.cfg.CompactionMaxRate/8, 1<<20)))
	})
	lim := b.compactionLim
	return func(ctx context.Context, n int) error {
		for n > 0 {
			k := min(n, lim.Burst())
			if err := lim.WaitN(ctx, k); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
}
