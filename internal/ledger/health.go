package ledger

import "errors"

// ErrDiskFull is wrapped by the errors of appends refused for lack of disk
// space (the file system is full, or free space is below the store's
// minimum). It is a state, not a failure of the store: appends succeed again
// once space is freed, without a reopen.
var ErrDiskFull = errors.New("disk full")

// HealthReporter is implemented by stores that can tell why they serve in a
// degraded way while still serving (disk full, ...).
type HealthReporter interface {
	// Health returns the current problems, one short sentence each; empty
	// when healthy. Each problem comes from an independent check.
	Health() []string
}
