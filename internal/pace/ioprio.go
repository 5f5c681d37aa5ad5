package pace

// IdleIO runs fn with the calling thread's I/O priority lowered to the
// idle class (Linux ioprio_set IOPRIO_CLASS_IDLE; elsewhere fn just runs).
// Background work reads the journal through it: with an I/O scheduler that
// honours priorities (mq-deadline, bfq), the disk serves the producers'
// writes and fdatasyncs first, and the background reads when it is idle
// (or after the scheduler's aging limit, so they are never starved for
// good). The goroutine stays on one OS thread while fn runs, and the
// thread's previous priority is restored after.
func IdleIO(fn func() error) error { return idleIO(fn) }

// With returns IdleIO when idle is true, else a function that runs fn as
// it is: for callers that make idle I/O an option.
func With(idle bool) func(func() error) error {
	if idle {
		return IdleIO
	}
	return func(fn func() error) error { return fn() }
}
