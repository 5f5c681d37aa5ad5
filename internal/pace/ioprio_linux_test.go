//go:build linux

package pace

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIdleIOLowersThenRestoresThreadPriority: inside IdleIO the thread's
// I/O class is idle; after it, the thread has its priority back.
func TestIdleIOLowersThenRestoresThreadPriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	before, e := ioprio(tid)
	if e != 0 {
		t.Skipf("ioprio_get: %v", e)
	}
	var inside uintptr
	if err := IdleIO(func() error {
		inside, _ = ioprio(unix.Gettid())
		if unix.Gettid() != tid {
			t.Errorf("fn ran on thread %d, want %d (the caller's, locked)", unix.Gettid(), tid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside>>ioprioClassShift != ioprioClassIdle {
		t.Errorf("I/O priority inside IdleIO %#x, want class idle (3)", inside)
	}
	if after, _ := ioprio(tid); after != before {
		t.Errorf("I/O priority after IdleIO %#x, want %#x as before", after, before)
	}
}
