package pace

import (
	"context"
	"net"
	"runtime"
	"sync"
)

// Work that background work hands to other goroutines runs at their
// priority unless it is told otherwise: an object upload's bytes are
// copied into the socket (and, on loopback, through the TCP stack) by the
// HTTP transport's goroutines. NewContext marks a call as background work
// so that the store it reaches can write through Conn (and the journal
// read for it without readahead).

type ctxKey struct{}

// NewContext returns ctx marked as background work at priority c.
func NewContext(ctx context.Context, c CPU) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the priority ctx was marked with; ok is false for
// foreground work. Background work at the usual priority (c.Nice <= 0)
// is still background work: the journal reads it in small steps.
func FromContext(ctx context.Context) (c CPU, ok bool) {
	c, ok = ctx.Value(ctxKey{}).(CPU)
	return c, ok
}

// Conn returns conn with its writes made on an OS thread of their own at
// priority c (reads stay on the caller's thread). The thread lives as long
// as the connection: Close ends it. Where priorities are not supported,
// or c.Nice <= 0, conn is returned as it is.
func Conn(conn net.Conn, c CPU) net.Conn {
	if !lowCPUSupported || c.Nice <= 0 {
		return conn
	}
	lc := &lowConn{Conn: conn, reqs: make(chan []byte), res: make(chan writeResult), done: make(chan struct{})}
	go lc.writer(c)
	return lc
}

type writeResult struct {
	n   int
	err error
}

// lowConn hands each Write to its writer goroutine, which is locked to a
// thread at the lower priority, and waits for the result.
type lowConn struct {
	net.Conn
	mu    sync.Mutex // one Write at a time: a request and its result pair up
	reqs  chan []byte
	res   chan writeResult
	done  chan struct{}
	close sync.Once
}

func (c *lowConn) writer(p CPU) {
	runtime.LockOSThread() // never unlocked: the thread exits with us
	lowerPriority(min(p.Nice, 19), p.Idle)
	for {
		select {
		case b := <-c.reqs:
			n, err := c.Conn.Write(b)
			c.res <- writeResult{n, err}
		case <-c.done:
			return
		}
	}
}

// Write implements net.Conn.
func (c *lowConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.reqs <- b:
	case <-c.done:
		return 0, net.ErrClosed
	}
	r := <-c.res
	return r.n, r.err
}

// Close implements net.Conn: it closes the connection, which ends a write
// in progress, and then the writer's thread.
func (c *lowConn) Close() error {
	err := c.Conn.Close()
	c.close.Do(func() { close(c.done) })
	return err
}
