//go:build linux

package pace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// threadConn records the thread each Write ran on, with its nice value and
// scheduling policy, and passes the bytes on.
type threadConn struct {
	net.Conn
	mu     sync.Mutex
	tids   map[int]bool
	nice   []int
	policy []uint32
}

func (c *threadConn) Write(b []byte) (int, error) {
	tid := unix.Gettid()
	p, _ := unix.Getpriority(unix.PRIO_PROCESS, tid)
	attr, _ := unix.SchedGetAttr(tid, 0)
	c.mu.Lock()
	c.tids[tid] = true
	c.nice = append(c.nice, 20-p)
	if attr != nil {
		c.policy = append(c.policy, attr.Policy)
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestConnWritesOnLowThread: every write through Conn runs on one thread
// at the priority asked, the bytes arrive in order, reads are untouched,
// and after Close writes fail with net.ErrClosed.
func TestConnWritesOnLowThread(t *testing.T) {
	a, b := net.Pipe()
	tc := &threadConn{Conn: a, tids: map[int]bool{}}
	c := Conn(tc, DefaultCPU)
	var got bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&got, b)
		read <- err
	}()
	var want bytes.Buffer
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				msg := bytes.Repeat([]byte{byte('a' + i)}, 100+j)
				mu.Lock() // the order of the bytes is the order of the writes
				want.Write(msg)
				if n, err := c.Write(msg); n != len(msg) || err != nil {
					t.Errorf("write: %d %v", n, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	go func() { _, _ = b.Write([]byte("reply")) }()
	reply := make([]byte, 5)
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "reply" {
		t.Fatalf("read: %q %v", reply, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("received %d bytes, not the %d written in order", got.Len(), want.Len())
	}
	if len(tc.tids) != 1 {
		t.Errorf("writes ran on %d threads, want 1", len(tc.tids))
	}
	for i, n := range tc.nice {
		if n < DefaultNice || tc.policy[i] != unix.SCHED_IDLE {
			t.Fatalf("write %d at nice %d, policy %d; want %d and SCHED_IDLE", i, n, tc.policy[i], DefaultNice)
		}
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
}

// TestConnCloseEndsBlockedWrite: closing the connection ends a write that
// waits for the peer.
func TestConnCloseEndsBlockedWrite(t *testing.T) {
	a, _ := net.Pipe() // nobody reads: a write blocks
	c := Conn(a, DefaultCPU)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("blocked"))
		errc <- err
	}()
	_ = c.Close()
	if err := <-errc; err == nil {
		t.Fatal("a write blocked at Close succeeded")
	}
}

func TestContextCarriesCPU(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Error("an unmarked context is background work")
	}
	if c, ok := FromContext(NewContext(context.Background(), CPU{})); !ok || c != (CPU{}) {
		t.Errorf("a mark at the usual priority: %+v %v, want background work", c, ok)
	}
	if c, ok := FromContext(NewContext(context.Background(), DefaultCPU)); !ok || c != DefaultCPU {
		t.Errorf("FromContext: %+v %v, want %+v", c, ok, DefaultCPU)
	}
}
