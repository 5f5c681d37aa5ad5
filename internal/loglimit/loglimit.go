// Package loglimit keeps a repeated log line from flooding the log: at most
// one line per interval, carrying the number of lines suppressed since the
// previous one. A broker that cannot store anything (a full disk) would
// otherwise log every refused send.
//
// It depends on the standard library only.
package loglimit

import (
	"sync"
	"time"
)

// Limiter allows one line per Interval. The zero value allows every line;
// it is safe for concurrent use.
type Limiter struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time // when the last allowed line was logged
	suppressed int
}

// New returns a Limiter allowing one line per interval.
func New(interval time.Duration) *Limiter { return &Limiter{Interval: interval} }

// Allow reports whether a line may be logged now and, when it may, how many
// lines were suppressed since the previous one (log it with the line).
func (l *Limiter) Allow() (ok bool, suppressed int) { return l.allowAt(time.Now()) }

func (l *Limiter) allowAt(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Interval {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
