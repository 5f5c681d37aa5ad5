package supervise

import (
	"errors"
	"time"
)

// Errors the workers' managers return; the admin API maps them to HTTP
// statuses the same way for functions, sources and sinks.

// BadRequestError is a problem with what the caller sent (400).
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

// NotFoundError is a missing instance or key (404).
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// ErrConflict is a concurrent change (409).
var ErrConflict = errors.New("conflict")

// ExceptionEntry is one recent failure, in Pulsar's status shape.
type ExceptionEntry struct {
	ExceptionString string `json:"exceptionString"`
	TimestampMs     int64  `json:"timestampMs"`
}

// MaxLatestExceptions bounds the failures a status answer lists.
const MaxLatestExceptions = 10

// AppendBounded adds err to l, dropping the oldest beyond
// MaxLatestExceptions.
func AppendBounded(l []ExceptionEntry, err error) []ExceptionEntry {
	l = append(l, ExceptionEntry{ExceptionString: err.Error(), TimestampMs: time.Now().UnixMilli()})
	if len(l) > MaxLatestExceptions {
		l = l[1:]
	}
	return l
}
