//go:build linux

package pace

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprio_set(2): who, class in the top bits of the priority value.
const (
	ioprioWhoProcess = 1 // a thread id, for a single thread
	ioprioClassShift = 13
	ioprioClassIdle  = 3
)

func ioprio(tid int) (uintptr, unix.Errno) {
	p, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	return p, e
}

func setIoprio(tid int, p uintptr) unix.Errno {
	_, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), p)
	return e
}

func idleIO(fn func() error) error {
	runtime.LockOSThread()
	tid := unix.Gettid()
	old, e := ioprio(tid)
	if e != 0 || setIoprio(tid, ioprioClassIdle<<ioprioClassShift) != 0 {
		runtime.UnlockOSThread()
		return fn() // not permitted here: run at the usual priority
	}
	defer func() {
		if setIoprio(tid, old) == 0 {
			runtime.UnlockOSThread()
		}
		// Else the thread stays locked to this goroutine and exits with
		// it, rather than serve other goroutines at the idle priority.
	}()
	return fn()
}
