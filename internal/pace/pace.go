// Package pace lowers the priority of a broker's background work
// (offloads, compactions) while producers are publishing: Go has no
// goroutine priorities, so the work pauses after each step for as long as
// the step ran, taking at most about half of the time of the core it runs
// on while the broker is busy, and runs at full speed when it is idle.
package pace

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// BusyWindow is how recent the last publish must be for the broker to
// count as busy.
const BusyWindow = time.Second

// maxPause caps one pause, so that a long step (an object upload) does not
// stall the work for as long again.
const maxPause = 250 * time.Millisecond

// Activity records when the broker last served a producer.
type Activity struct{ last atomic.Int64 }

// Touch records activity now. Cheap enough for every publish.
func (a *Activity) Touch() { a.last.Store(time.Now().UnixNano()) }

// Busy reports whether there was activity within BusyWindow.
func (a *Activity) Busy() bool {
	return a != nil && time.Now().UnixNano()-a.last.Load() < int64(BusyWindow)
}

// Pacer paces the steps of one piece of background work.
type Pacer struct {
	busy func() bool
	wait func(context.Context, time.Duration) error // sleep (tests record it)

	mu    sync.Mutex
	start time.Time // when the current step started
}

// New returns a pacer whose steps pause while busy() (nil: never).
func New(busy func() bool) *Pacer { return &Pacer{busy: busy, wait: sleep, start: time.Now()} }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Step ends a step: while busy, it waits as long as the step ran (capped
// at maxPause) or until ctx ends; then the next step starts.
func (p *Pacer) Step(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ran := time.Since(p.start)
	if p.busy != nil && p.busy() && ran > 0 {
		if err := p.wait(ctx, min(ran, maxPause)); err != nil {
			return err
		}
	}
	p.start = time.Now()
	return nil
}
