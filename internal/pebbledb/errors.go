package pebbledb

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/cockroachdb/pebble/v2"
)

// DefaultHint is what a DamagedError tells the operator unless the caller
// sets a more precise Hint.
const DefaultHint = `nothing was dropped; restore the store from a checkpoint (README: "Damaged metadata or index stores")`

// DamagedError reports a store that cannot be opened or read without losing
// data it acknowledged.
type DamagedError struct {
	Store string // "metadata", "index", "delayed-delivery"
	Dir   string
	File  string // the damaged file when known, relative to Dir
	Err   error
	// Hint says what to do; DefaultHint when empty.
	Hint string
}

func (e *DamagedError) Error() string {
	file := ""
	if e.File != "" {
		file = " (file " + e.File + ")"
	}
	hint := e.Hint
	if hint == "" {
		hint = DefaultHint
	}
	return fmt.Sprintf("%s store %s is damaged%s: %v; %s", e.Store, e.Dir, file, e.Err, hint)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// fileInError finds the file a Pebble error names: "000012.sst",
// "MANIFEST-000005", "OPTIONS-000007", or a WAL as "wal 000009".
var fileInError = regexp.MustCompile(`\b(\d{6}\.(?:sst|log|blob)|MANIFEST-\d+|OPTIONS-\d+)\b|\bwal (\d{6})\b`)

func damaged(store, dir, file string, err error) *DamagedError {
	if file == "" {
		if m := fileInError.FindStringSubmatch(err.Error()); m != nil {
			file = m[1]
			if file == "" {
				file = m[2] + ".log"
			}
		}
	}
	return &DamagedError{Store: store, Dir: dir, File: file, Err: err}
}

// IsCorruption reports whether err says stored data is damaged.
func IsCorruption(err error) bool {
	var de *DamagedError
	return errors.As(err, &de) || errors.Is(err, pebble.ErrCorruption)
}
