package pebbledb

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// logger sends Pebble's log lines to slog. Pebble's Fatalf must not return:
// inside Open or Guard it panics with a fatal value that they turn into a
// DamagedError; elsewhere (a background flush or compaction) it logs one
// clear line and exits, since a panic trace explains nothing to an operator.
type logger struct {
	log     *slog.Logger
	store   string
	dir     string
	guarded atomic.Int32
	// corrupt is the first corruption Pebble reported (a damaged .sst found
	// by a read, a compaction or table statistics).
	corrupt atomic.Pointer[pebble.DataCorruptionInfo]
}

// dataCorruption replaces Pebble's default handler, which calls Fatalf. The
// read that met the damage fails with an error; Open and Guard turn the
// recorded corruption into a DamagedError naming the file.
func (l *logger) dataCorruption(info pebble.DataCorruptionInfo) {
	l.corrupt.CompareAndSwap(nil, &info)
	l.log.Error(fmt.Sprintf("%s store %s: damaged file %s: %v; %s", l.store, l.dir, filepath.Base(info.Path), info.Details, DefaultHint),
		"component", "pebble", "store", l.store)
}

// corruption returns the recorded corruption as a DamagedError, or nil.
func (l *logger) corruption() *DamagedError {
	info := l.corrupt.Load()
	if info == nil {
		return nil
	}
	return damaged(l.store, l.dir, filepath.Base(info.Path), info.Details)
}

// fatal is the panic value of Fatalf while guarded.
type fatal struct{ msg string }

func (l *logger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble", "store", l.store)
}

func (l *logger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble", "store", l.store)
}

func (l *logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.guarded.Load() > 0 {
		panic(fatal{msg})
	}
	l.log.Error(fmt.Sprintf("%s store %s failed, stopping: %s; %s", l.store, l.dir, msg, DefaultHint),
		"component", "pebble", "store", l.store)
	os.Exit(1)
}
