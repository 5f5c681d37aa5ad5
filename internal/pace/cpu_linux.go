//go:build linux

package pace

import "golang.org/x/sys/unix"

const lowCPUSupported = true

// setNice raises the calling thread's nice value to nice (on Linux a
// thread is a task of its own); a thread already at that value or above
// (a broker started with nice) stays as it is: background work never runs
// above the broker's priority. Raising needs no privilege; if it is
// refused anyway, the work runs at the usual priority.
func setNice(nice int) {
	tid := unix.Gettid()
	// The raw getpriority(2) returns 20 - nice.
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil && 20-p >= nice {
		return
	}
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
}
