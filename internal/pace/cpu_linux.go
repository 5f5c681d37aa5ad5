//go:build linux

package pace

import "golang.org/x/sys/unix"

const lowCPUSupported = true

// setNice sets the calling thread's nice value (on Linux a thread is a
// task of its own). Raising it needs no privilege; if it is refused
// anyway, the work runs at the usual priority.
func setNice(nice int) {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
