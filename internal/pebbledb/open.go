package pebbledb

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open.
type Options struct {
	// Store names the store in errors and logs: "metadata", "index", ...
	Store string
	// Pebble are the database's options (nil: Pebble's defaults). Logger is
	// replaced; FS defaults to the operating system's.
	Pebble *pebble.Options
	Logger *slog.Logger // default slog.Default()
	// ReadOnly checks and opens the database without writing anything (mb
	// verify): Pebble's ReadOnly, and the clean-close record is left alone.
	ReadOnly bool
}

// DB is an open Pebble database that records a clean close. Its methods
// are Pebble's, plus Guard and Checkpoint.
type DB struct {
	*pebble.DB
	store, dir string
	readOnly   bool
	fs         vfs.FS
	log        *logger

	mu     sync.RWMutex // held for writing by Close, for reading by Checkpoint
	closed bool
}

// Open opens (creating when missing) the database in dir. Damage found in
// its files is returned as a *DamagedError, with nothing dropped: see the
// package comment for what is checked.
func Open(dir string, o Options) (db *DB, err error) {
	popts := &pebble.Options{}
	if o.Pebble != nil {
		c := *o.Pebble
		popts = &c
	}
	fs := popts.FS
	if fs == nil {
		fs = vfs.Default
	}
	// Checkpoints copy: a hard link would share the blocks whose damage
	// the checkpoint is meant to survive.
	popts.FS = noLinkFS{fs}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	lg := &logger{log: o.Logger, store: o.Store, dir: dir}
	popts.Logger = lg
	var events pebble.EventListener
	if popts.EventListener != nil {
		events = *popts.EventListener
	}
	events.DataCorruption = lg.dataCorruption
	popts.EventListener = &events

	marker, err := readMarker(fs, dir)
	if err != nil {
		return nil, damaged(o.Store, dir, markerName, err)
	}
	if p := check(fs, dir, marker); p != nil {
		return nil, damaged(o.Store, dir, p.file, p.err)
	}
	popts.ReadOnly = o.ReadOnly
	if marker != nil && !o.ReadOnly {
		if err := removeMarker(fs, dir); err != nil {
			return nil, fmt.Errorf("open %s store %s: %w", o.Store, dir, err)
		}
	}

	lg.guarded.Add(1)
	defer lg.guarded.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, panicked(o.Store, dir, r)
		}
	}()
	pdb, err := pebble.Open(dir, popts)
	if de := lg.corruption(); de != nil {
		if err == nil {
			pdb.Close()
		}
		return nil, de
	}
	if err != nil {
		if environmental(err) {
			return nil, fmt.Errorf("open %s store %s: %w", o.Store, dir, err)
		}
		return nil, damaged(o.Store, dir, "", err)
	}
	return &DB{DB: pdb, store: o.Store, dir: dir, readOnly: o.ReadOnly, fs: fs, log: lg}, nil
}

// environmental reports errors that say nothing about the files' contents:
// no permission, the store locked by another process, a full disk.
func environmental(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EACCES, syscall.EPERM, syscall.EAGAIN, syscall.ENOSPC, syscall.EROFS, syscall.EMFILE, syscall.ENFILE:
			return true
		}
	}
	return errors.Is(err, iofs.ErrPermission)
}

func panicked(store, dir string, r any) *DamagedError {
	if f, ok := r.(fatal); ok {
		return damaged(store, dir, "", errors.New(f.msg))
	}
	return damaged(store, dir, "", fmt.Errorf("pebble failed: %v", r))
}

// Guard runs fn, which reads the database (loading its state at startup),
// and returns corruption it meets, or a Pebble fatal error, as a
// *DamagedError.
func (d *DB) Guard(fn func() error) (err error) {
	d.log.guarded.Add(1)
	defer d.log.guarded.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			err = panicked(d.store, d.dir, r)
		}
	}()
	err = fn()
	if de := d.log.corruption(); de != nil {
		return de
	}
	if err != nil {
		if errors.Is(err, pebble.ErrCorruption) {
			return damaged(d.store, d.dir, "", err)
		}
		return err
	}
	return nil
}

// Dir is the database's directory.
func (d *DB) Dir() string { return d.dir }

// Close closes the database and records the clean close, so that the next
// Open treats any bad tail as damage rather than a torn write.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.DB.Close(); err != nil {
		return err
	}
	if d.readOnly {
		return nil
	}
	if err := writeMarker(d.fs, d.dir); err != nil {
		return fmt.Errorf("%s store %s: record the clean close: %w", d.store, d.dir, err)
	}
	return nil
}

// noLinkFS refuses hard links, so vfs.LinkOrCopy copies.
type noLinkFS struct{ vfs.FS }

var errNoLinks = errors.New("pebbledb: checkpoints copy files")

func (noLinkFS) Link(string, string) error { return errNoLinks }
