package ledger

import (
	"errors"
	"time"
)

// ErrOffloadRunning is returned by Offload while an offload of the ledger runs.
var ErrOffloadRunning = errors.New("ledger: offload already in progress")

// Offload states, as Pulsar's OffloadProcessStatus.
const (
	OffloadNotRun  = "NOT_RUN"
	OffloadRunning = "RUNNING"
	OffloadSuccess = "SUCCESS"
	OffloadError   = "ERROR"
)

// OffloadStatus is the state of the last offload of a ledger.
type OffloadStatus struct {
	Status    string
	LastError string
	// FirstUnoffloaded is the first entry id not offloaded (0 when nothing
	// was).
	FirstUnoffloaded int64
}

// Offloader is implemented by ledgers with tiered storage (ledger/tiered).
type Offloader interface {
	// Offload starts moving the entries with id < before to the object
	// store, in the background; ErrOffloadRunning while one runs.
	Offload(before int64) error
	// OffloadStatus reports the last offload since the ledger was opened.
	OffloadStatus() OffloadStatus
	// OffloadedSize is the bytes of entry data held in the object store.
	OffloadedSize() int64
	// OffloadedEntries is the number of entries held in the object store.
	OffloadedEntries() int64
	// SetDeletionLag sets how long offloaded entries stay local (0: delete
	// at once; negative: the store's default), for the entries offloaded
	// and the ones to come.
	SetDeletionLag(d time.Duration)
}
