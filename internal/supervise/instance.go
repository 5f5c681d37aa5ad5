package supervise

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Instance is what every supervised instance (of a function, source or
// sink) has: its life (context, done), whether a session runs, its
// restarts and last error, and whether stopping it removes its
// subscription. Workers embed it in their own instance type.
type Instance struct {
	ID     int
	Ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	Running  atomic.Bool
	Restarts atomic.Int64

	mu          sync.Mutex
	lastError   string
	unsubscribe bool
}

func newInstance(id int) *Instance {
	ctx, cancel := context.WithCancel(context.Background())
	return &Instance{ID: id, Ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Supervised returns i itself: embedding *Instance makes a type a Member.
func (i *Instance) Supervised() *Instance { return i }

// Run runs sessions with Loop until the instance is stopped. After a
// failed session the restart is counted and logged, and onFailure (if
// not nil) records the error.
func (i *Instance) Run(log *slog.Logger, what string, session func(context.Context) error, onFailure func(error)) {
	Loop(i.Ctx, func(ctx context.Context) error {
		err := session(ctx)
		i.Running.Store(false)
		return err
	}, func(err error, backoff time.Duration) {
		if onFailure != nil {
			onFailure(err)
		}
		i.Restarts.Add(1)
		log.Warn(what+" instance failed; restarting", "error", err, "backoff", backoff)
	})
}

// MarkRunning notes that a session started: running, no current error.
func (i *Instance) MarkRunning() {
	i.Running.Store(true)
	i.SetLastError("")
}

// SetLastError sets the error a status answer shows.
func (i *Instance) SetLastError(s string) {
	i.mu.Lock()
	i.lastError = s
	i.mu.Unlock()
}

// LastError is the error a status answer shows ("" when none).
func (i *Instance) LastError() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.lastError
}

// Unsubscribing reports whether the session's end must remove the
// subscription (the instance was the last one stopped by a delete).
func (i *Instance) Unsubscribing() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.unsubscribe
}
