//go:build linux

package pace

import (
	"errors"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBackgroundRunsNicedWithOneMoreP: fn runs on another thread at the
// nice value asked (or the process's, when higher) and under SCHED_IDLE
// while the process has one P more; after it the caller's
// thread keeps its priority, GOMAXPROCS is back, and fn's error is returned.
func TestBackgroundRunsNicedWithOneMoreP(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	procs := runtime.GOMAXPROCS(0)
	niceBefore, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	var insideTid, insideProcs, insideNice int
	var insidePolicy uint32
	want := errors.New("done")
	err = Background(DefaultCPU, func() error {
		insideTid, insideProcs = unix.Gettid(), runtime.GOMAXPROCS(0)
		// getpriority(2) returns 20-nice for the raw syscall.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, insideTid)
		if err != nil {
			t.Errorf("getpriority: %v", err)
		}
		insideNice = 20 - p
		attr, err := unix.SchedGetAttr(insideTid, 0)
		if err != nil {
			t.Errorf("sched_getattr: %v", err)
		} else {
			insidePolicy = attr.Policy
		}
		return want
	})
	if err != want {
		t.Fatalf("Background returned %v, want fn's error", err)
	}
	if insideTid == tid {
		t.Error("fn ran on the caller's thread")
	}
	if want := max(20-niceBefore, DefaultNice); insideNice != want {
		t.Errorf("nice inside Background %d, want %d", insideNice, want)
	}
	if insidePolicy != unix.SCHED_IDLE {
		t.Errorf("scheduling policy inside Background %d, want SCHED_IDLE", insidePolicy)
	}
	if insideProcs != procs+1 {
		t.Errorf("GOMAXPROCS inside Background %d, want %d", insideProcs, procs+1)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS after Background %d, want %d", got, procs)
	}
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err != nil || p != niceBefore {
		t.Errorf("caller's priority after Background %d %v, want %d", p, err, niceBefore)
	}
}

// TestBackgroundConcurrentBoundsExtraProcs: concurrent calls add one P
// each up to maxExtraProcs, and the count is back when all end.
func TestBackgroundConcurrentBoundsExtraProcs(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	const n = maxExtraProcs + 2
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_ = Background(DefaultCPU, func() error {
				started.Done()
				release.Wait()
				return nil
			})
		})
	}
	started.Wait()
	if got := runtime.GOMAXPROCS(0); got != procs+maxExtraProcs {
		t.Errorf("GOMAXPROCS with %d running %d, want %d", n, got, procs+maxExtraProcs)
	}
	release.Done()
	wg.Wait()
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS after %d, want %d", got, procs)
	}
}

// TestBackgroundWithoutIdleKeepsPolicy: without Idle the work's thread
// keeps the usual policy (SCHED_OTHER), niced only.
func TestBackgroundWithoutIdleKeepsPolicy(t *testing.T) {
	var policy uint32 = 99
	_ = Background(CPU{Nice: 5}, func() error {
		attr, err := unix.SchedGetAttr(unix.Gettid(), 0)
		if err != nil {
			t.Errorf("sched_getattr: %v", err)
			return nil
		}
		policy = attr.Policy
		return nil
	})
	if policy != unix.SCHED_NORMAL {
		t.Errorf("policy %d, want SCHED_NORMAL (0)", policy)
	}
}
