package connectors

import "sync"

// Committer tracks records in flight in send order and tells the last
// position all of whose records (and all before) have receipts: the
// position a source may checkpoint. A failed receipt stops the advance
// (the source must restart from its checkpoint).
type Committer[P any] struct {
	mu        sync.Mutex
	pending   []*pendingPos[P]
	committed P
	has       bool
	err       error
}

type pendingPos[P any] struct {
	pos  P
	left int // receipts still to come
	done bool
}

// Add registers the next record, at position pos, and returns its receipt
// callback.
func (c *Committer[P]) Add(pos P) func(error) { return c.AddN(pos, 1) }

// AddN registers the next n records, all at position pos (a transaction's
// rows at its end LSN), and returns their shared receipt callback, to be
// called once per record: one entry and one closure per group rather than
// per record. n must be at least 1.
func (c *Committer[P]) AddN(pos P, n int) func(error) {
	p := &pendingPos[P]{pos: pos, left: n}
	c.mu.Lock()
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	return func(err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			if c.err == nil {
				c.err = err
			}
			return
		}
		if p.left--; p.left > 0 {
			return
		}
		p.done = true
		if c.err != nil {
			return
		}
		n := 0
		for n < len(c.pending) && c.pending[n].done {
			c.committed, c.has = c.pending[n].pos, true
			n++
		}
		c.pending = c.pending[n:]
	}
}

// Committed returns the checkpointable position, if any, and the first
// receipt error.
func (c *Committer[P]) Committed() (P, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed, c.has, c.err
}

// InFlight is the number of records (groups, for AddN) without a receipt.
func (c *Committer[P]) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
