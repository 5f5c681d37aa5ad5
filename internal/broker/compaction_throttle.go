package broker

import (
	"context"

	"golang.org/x/time/rate"
)

// compactionThrottle is the rate limit of compaction reads
// (Config.CompactionMaxRate), shared by every compaction of the broker;
// nil without a limit.
func (b *Broker) compactionThrottle() func(context.Context, int) error {
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
