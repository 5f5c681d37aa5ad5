package broker

// Message and byte counters of producers, consumers and subscriptions, and
// the rates derived from them for stats.

import (
	"sync"
	"sync/atomic"
	"time"
)

// flowCounter counts the messages and bytes through a producer, consumer or
// subscription, and derives rates from them when asked.
type flowCounter struct {
	msgs, bytes atomic.Int64
	start       atomic.Int64 // unix nanos of the first add

	mu                  sync.Mutex // a leaf: taken under Topic.mu or Subscription.mu
	at                  time.Time  // last rate sample
	lastMsgs, lastBytes int64
	msgRate, byteRate   float64
}

// rateWindow is the shortest interval rates are computed over.
const rateWindow = time.Second

func (f *flowCounter) add(msgs, bytes int) {
	if f.start.Load() == 0 {
		f.start.CompareAndSwap(0, time.Now().UnixNano())
	}
	f.msgs.Add(int64(msgs))
	f.bytes.Add(int64(bytes))
}

// rates returns messages/s and bytes/s averaged since the previous sample
// (the first add for the first one), sampling again at most once per
// rateWindow; between samples it repeats the last rates.
func (f *flowCounter) rates(now time.Time) (msgRate, byteRate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at.IsZero() {
		start := f.start.Load()
		if start == 0 {
			return 0, 0
		}
		f.at = time.Unix(0, start)
	}
	if el := now.Sub(f.at); el >= rateWindow {
		m, b := f.msgs.Load(), f.bytes.Load()
		f.msgRate = float64(m-f.lastMsgs) / el.Seconds()
		f.byteRate = float64(b-f.lastBytes) / el.Seconds()
		f.at, f.lastMsgs, f.lastBytes = now, m, b
	}
	return f.msgRate, f.byteRate
}

// countOut records an entry of n messages dispatched to c. Called with s.mu held.
func (s *Subscription) countOut(c *Consumer, n, bytes int) {
	c.out.add(n, bytes)
	s.out.add(n, bytes)
}
