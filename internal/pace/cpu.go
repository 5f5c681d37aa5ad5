package pace

import (
	"os"
	"runtime"
	"sync"
)

// DefaultNice is the nice value background work runs at by default, the
// lowest priority: a producer's thread waking takes the core at once (the
// kernel preempts a thread of lower weight on wakeup), which is what keeps
// publish p99 while a compaction runs (nice 10 and SCHED_IDLE measured
// worse, docs/benchmarks.md). The cost: against each busy thread of normal
// priority the work gets about 1.5 % of a core, so on a saturated broker
// offloads and compactions slow down that much; set --background-nice
// lower (or 0) where they must keep pace.
const DefaultNice = 19

// Background runs fn as background CPU work at the given nice value (1 to
// 19; 0 or less: fn just runs) and returns its error. On Linux fn runs on
// an OS thread of its own whose nice value is raised. While fn runs the
// process has one more P (GOMAXPROCS), so that the work's thread, when the
// kernel leaves it waiting, does not hold one of the Ps the broker's other
// goroutines run on. The thread is not reused: it exits with fn's
// goroutine, so no other goroutine ever runs at that priority (lowering a
// thread's nice value again needs a privilege). Goroutines fn starts run
// as usual. Elsewhere fn just runs.
func Background(nice int, fn func() error) error {
	if !lowCPUSupported || nice <= 0 {
		return fn()
	}
	addProc()
	defer removeProc()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		setNice(min(nice, 19))
		errc <- fn()
	}()
	return <-errc
}

// WithBackground returns a function that runs fn through Background at
// nice.
func WithBackground(nice int) func(func() error) error {
	return func(fn func() error) error { return Background(nice, fn) }
}

// extraProcs counts the Background calls running, each owning one P
// beyond the GOMAXPROCS the process had before the first.
var extraProcs struct {
	sync.Mutex
	n, base int
}

// maxExtraProcs bounds the added Ps: more concurrent background work
// shares them.
const maxExtraProcs = 4

func addProc() {
	extraProcs.Lock()
	defer extraProcs.Unlock()
	if extraProcs.n == 0 {
		extraProcs.base = runtime.GOMAXPROCS(0)
	}
	extraProcs.n++
	if extraProcs.n <= maxExtraProcs {
		runtime.GOMAXPROCS(extraProcs.base + extraProcs.n)
	}
}

func removeProc() {
	extraProcs.Lock()
	defer extraProcs.Unlock()
	extraProcs.n--
	switch {
	case extraProcs.n >= maxExtraProcs:
	case extraProcs.n > 0:
		runtime.GOMAXPROCS(extraProcs.base + extraProcs.n)
	case os.Getenv("GOMAXPROCS") == "":
		// Back to the runtime's own default, which follows the CPU limit
		// of the container (setting GOMAXPROCS would freeze it).
		runtime.SetDefaultGOMAXPROCS()
	default:
		runtime.GOMAXPROCS(extraProcs.base)
	}
}
