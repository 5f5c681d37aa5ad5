//go:build linux

package pace

import "golang.org/x/sys/unix"

const lowCPUSupported = true

// lowerPriority raises the calling thread's nice value to nice (on Linux a
// thread is a task of its own) and, with idle, sets its policy to
// SCHED_IDLE. A thread already at that nice value or above (a broker
// started with nice) keeps its own: background work never runs above the
// broker's priority. Lowering needs no privilege; if it is refused anyway,
// the work runs at the priority it has.
func lowerPriority(nice int, idle bool) {
	tid := unix.Gettid()
	// The raw getpriority(2) returns 20 - nice.
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err != nil || 20-p < nice {
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
	}
	if idle {
		_ = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
	}
}
