package local

import (
	"time"
)

// Background appends (ledger.BackgroundAppender: a compaction's output)
// do not start a group commit of their own: they wait in journal.bg and
// join the next group the producers' appends start, or start one after
// bgDelay or once bgMaxBytes wait. A compaction appending at full speed
// would otherwise keep the committer busy with its own write+fdatasync
// rounds, and a producer's append arriving meanwhile would wait for that
// round and then its own: about twice the sync latency. Their durability is
// the same as any append's: done is called after the group's sync.

const (
	bgDelay    = 5 * time.Millisecond
	bgMaxBytes = 128 << 10
)

type background struct {
	items []pending
	bytes int
	timer *time.Timer // armed while items wait
}

// appendBackground queues data for ledger h as a background append.
func (j *journal) appendBackground(h *handle, data []byte, done func(int64, error)) {
	j.enqueue(h, data, done, true)
}

// add queues a background append (under j.mu).
func (b *background) add(j *journal, it pending) {
	b.items = append(b.items, it)
	b.bytes += len(it.data)
	if b.bytes >= bgMaxBytes {
		j.takeBackground()
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(bgDelay, j.flushBackground)
	} else if len(b.items) == 1 {
		b.timer.Reset(bgDelay)
	}
}

// takeBackground moves the waiting background appends to the end of the
// queue (under j.mu), ahead of whatever is queued next: every append of a
// ledger is queued in the order its id was given.
func (j *journal) takeBackground() {
	b := &j.bg
	if len(b.items) == 0 {
		return
	}
	if len(j.queue) == 0 {
		defer j.wake() // a group to start: the queue was empty
	}
	j.queue = append(j.queue, b.items...)
	clear(b.items)
	b.items, b.bytes = b.items[:0], 0
}

// flushBackground starts a group for background appends that waited
// bgDelay without one.
func (j *journal) flushBackground() {
	j.mu.Lock()
	j.takeBackground()
	j.mu.Unlock()
}
