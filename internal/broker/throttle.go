package broker

import (
	"math"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
)

// throttle is a pair of token buckets (messages and bytes) refilled at a
// limit per period, holding at most one period's worth. Taking may
// overdraw it: a batch is never split, and the debt is paid by waiting, as
// Pulsar's rate limiters do (they check before and count after).
type throttle struct {
	mu     sync.Mutex
	msgs   bucket
	bytes  bucket
	period time.Duration
}

type bucket struct {
	limit  float64 // per period; 0: none
	tokens float64
	last   time.Time
}

// newThrottle returns nil when neither limit is set (<= 0).
func newThrottle(msgs, bytes int64, periodSeconds int) *throttle {
	if msgs <= 0 && bytes <= 0 {
		return nil
	}
	if periodSeconds <= 0 {
		periodSeconds = 1
	}
	now := time.Now()
	t := &throttle{period: time.Duration(periodSeconds) * time.Second}
	t.msgs = bucket{limit: float64(max(msgs, 0)), tokens: float64(max(msgs, 0)), last: now}
	t.bytes = bucket{limit: float64(max(bytes, 0)), tokens: float64(max(bytes, 0)), last: now}
	return t
}

func publishThrottle(r *meta.PublishRate) *throttle {
	if r == nil {
		return nil
	}
	return newThrottle(int64(r.PublishThrottlingRateInMsg), r.PublishThrottlingRateInByte, 1)
}

func dispatchThrottle(r *meta.DispatchRate) *throttle {
	if r == nil {
		return nil
	}
	return newThrottle(int64(r.DispatchThrottlingRateInMsg), r.DispatchThrottlingRateInByte, r.RatePeriodInSecond)
}

// sameAs reports whether t throttles like o (a policy refresh keeps the
// buckets, and their debt, when nothing changed).
func (t *throttle) sameAs(o *throttle) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.msgs.limit == o.msgs.limit && t.bytes.limit == o.bytes.limit && t.period == o.period
}

func (b *bucket) refill(now time.Time, period time.Duration) {
	if b.limit == 0 {
		return
	}
	b.tokens = min(b.limit, b.tokens+b.limit*now.Sub(b.last).Seconds()/period.Seconds())
	b.last = now
}

// wait is how long until neither bucket is in debt.
func (b *bucket) wait(period time.Duration) time.Duration {
	if b.limit == 0 || b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.limit * float64(period))
}

// delay returns how long to wait before the next send or dispatch (0: now).
func (t *throttle) delay(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.msgs.refill(now, t.period)
	t.bytes.refill(now, t.period)
	return max(t.msgs.wait(t.period), t.bytes.wait(t.period))
}

// left returns the whole messages and bytes the buckets hold (MaxInt32
// for a bucket without limit).
func (t *throttle) left() (msgs, bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.msgs.refill(now, t.period)
	t.bytes.refill(now, t.period)
	return t.msgs.whole(), t.bytes.whole()
}

func (b *bucket) whole() int {
	if b.limit == 0 {
		return math.MaxInt32
	}
	return int(max(b.tokens, 0))
}

// take counts msgs messages of size bytes.
func (t *throttle) take(msgs, size int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.msgs.refill(now, t.period)
	t.bytes.refill(now, t.period)
	if t.msgs.limit > 0 {
		t.msgs.tokens -= float64(msgs)
	}
	if t.bytes.limit > 0 {
		t.bytes.tokens -= float64(size)
	}
}
