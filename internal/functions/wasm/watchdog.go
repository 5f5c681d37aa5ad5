package wasm

import (
	"time"
)

// The watchdog enforces Config.CallTimeout. A call only stores its start
// time (an atomic store, no timer per call: a call must cost about a
// microsecond); one goroutine per runtime looks at the running calls every
// tick and cancels the context of an overdue one, which makes wazero close
// the module (WithCloseOnContextDone) and the call return. A call is thus
// interrupted between CallTimeout and CallTimeout plus one tick.

// clockBase makes watchClock's values positive: 0 means "no call".
var clockBase = time.Now()

func watchClock() int64 { return int64(time.Since(clockBase)) + 1 }

// tick is how often the watchdog looks: a quarter of the budget, within
// [1ms, 100ms].
func (r *Runtime) tick() time.Duration {
	return min(max(r.cfg.CallTimeout/4, time.Millisecond), 100*time.Millisecond)
}

func (r *Runtime) watch(g *generation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[g] = struct{}{}
	if r.stopWatch == nil {
		r.stopWatch = make(chan struct{})
		go r.watchdog(r.stopWatch)
	}
}

func (r *Runtime) unwatch(g *generation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.gens, g)
	if len(r.gens) == 0 && r.stopWatch != nil {
		close(r.stopWatch) // no instance left: no goroutine either
		r.stopWatch = nil
	}
}

func (r *Runtime) watchdog(stop chan struct{}) {
	t := time.NewTicker(r.tick())
	defer t.Stop()
	budget := int64(r.cfg.CallTimeout)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := watchClock()
		r.mu.Lock()
		for g := range r.gens {
			s := g.started.Load()
			// Re-read before cancelling: the overdue call may have just
			// ended and the next one begun.
			if s != 0 && now-s > budget && g.started.Load() == s {
				g.timedOut.Store(true)
				g.cancel()
			}
		}
		r.mu.Unlock()
	}
}
