package pace

import (
	"os"
	"runtime"
	"sync"
)

// DefaultNice is the nice value background work runs at by default, the
// lowest priority. The cost: against each busy thread of normal priority
// the work gets about 1.5 % of a core, so on a saturated broker offloads
// and compactions slow down that much; set --background-nice lower (or 0)
// where they must keep pace.
const DefaultNice = 19

// CPU is the CPU priority of background work.
type CPU struct {
	// Nice is the nice value, 1 to 19; 0 or less: the usual priority (Idle
	// is then ignored).
	Nice int
	// Idle also puts the work's thread under Linux's SCHED_IDLE policy:
	// a thread of normal priority that wakes up (a producer's connection,
	// the journal's committer back from its fdatasync) preempts it at
	// once. With a nice value alone, the kernel's scheduler (EEVDF) lets
	// the running thread finish its time slice first, about a millisecond,
	// which publish p99 showed (docs/benchmarks.md, session 12).
	Idle bool
}

// DefaultCPU is the priority background work runs at by default.
var DefaultCPU = CPU{Nice: DefaultNice, Idle: true}

// Background runs fn as background CPU work at priority c and returns its
// error. On Linux, with c.Nice > 0, fn runs on an OS thread of its own
// whose nice value is raised (and, with c.Idle, whose policy becomes
// SCHED_IDLE). While fn runs the process has one more P (GOMAXPROCS), so
// that the work's thread, when the kernel leaves it waiting, does not
// hold one of the Ps the broker's other goroutines run on. The thread is
// not reused: it exits with fn's goroutine, so no other goroutine ever
// runs at that priority (raising a thread's priority again needs a
// privilege). Goroutines fn starts run as usual. Elsewhere fn just runs.
func Background(c CPU, fn func() error) error {
	if !lowCPUSupported || c.Nice <= 0 {
		return fn()
	}
	addProc()
	defer removeProc()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		lowerPriority(min(c.Nice, 19), c.Idle)
		errc <- fn()
	}()
	return <-errc
}

// WithBackground returns a function that runs fn through Background at c.
func WithBackground(c CPU) func(func() error) error {
	return func(fn func() error) error { return Background(c, fn) }
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
