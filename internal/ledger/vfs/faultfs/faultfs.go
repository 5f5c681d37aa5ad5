// Package faultfs wraps a vfs.FS to inject disk faults and simulate crashes in
// tests of code written against vfs: failing writes and syncs after a number of
// calls, and Crash, which leaves the files as a power loss or kill -9 could
// (unsynced data dropped, possibly with a torn, garbled tail). Give each
// "process" (each store opened in a test) its own Session, so that what a
// crashed one still tries to do after the crash fails instead of changing the
// files the next one recovers from.
//
// It depends only on package vfs and the standard library.
package faultfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// ErrCrashed is returned by every operation on a file opened, or through a
// Session taken, before the last crash: the process that used them is dead.
var ErrCrashed = errors.New("faultfs: used by a process that crashed")

// Op is a kind of operation faults can be injected into.
type Op int

// Operations that can fail or trigger a crash.
const (
	OpWrite   Op = iota // File.Write; a failing write first writes a random prefix (a short write)
	OpSync              // File.Sync
	OpSyncDir           // FS.SyncDir
	numOps
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpSyncDir:
		return "syncdir"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// CrashMode says what Crash leaves of the data written since the last sync.
type CrashMode int

// Crash modes.
const (
	// DropUnsynced drops every byte written after a file's last successful Sync.
	DropUnsynced CrashMode = iota
	// TornTail keeps a random prefix of the unsynced bytes, sometimes with
	// random garbage written over part of it or appended, as when a crash
	// interrupts the writeback of a partially written page.
	TornTail
)

// FS is a fault-injecting wrapper of a vfs.FS. It is safe for concurrent use.
type FS struct {
	base vfs.FS

	// crashMu is held shared by every operation and exclusively by Crash, so
	// no write lands half before and half after a crash.
	crashMu sync.RWMutex

	mu      sync.Mutex // guards the fields below
	rng     *rand.Rand
	gen     int                   // crash generation; handles of older ones are dead
	crashed chan struct{}         // closed by the next crash
	files   map[string]*fileState // files written through this FS, by clean path
	faults  [numOps]fault
	counts  [numOps]int // successful operations so far, per kind
}

// fileState is what the FS knows of a file's durability: its durable size
// and the writes since its last sync, in order, each with the durable bytes
// it replaced, so a crash can undo it.
type fileState struct {
	synced   int64 // bytes known durable
	unlinked bool  // created, and its directory not synced since
	writes   []unsyncedWrite
}

// truncated forgets what lies beyond size.
func (st *fileState) truncated(size int64) {
	st.synced = min(st.synced, size)
	kept := st.writes[:0]
	for _, w := range st.writes {
		if w.off >= size {
			continue
		}
		w.n = int(min(int64(w.n), size-w.off))
		w.old = w.old[:min(len(w.old), w.n)]
		kept = append(kept, w)
	}
	st.writes = kept
}

type unsyncedWrite struct {
	off int64
	n   int
	old []byte // what [off, off+n) held below the durable size
}

// wrote records a write of n bytes at off; base is the file before it.
func (st *fileState) wrote(base vfs.File, off int64, n int) error {
	w := unsyncedWrite{off: off, n: n}
	if keep := min(off+int64(n), st.synced) - off; keep > 0 {
		w.old = make([]byte, keep)
		if _, err := base.ReadAt(w.old, off); err != nil {
			return err
		}
	}
	st.writes = append(st.writes, w)
	return nil
}

// fault is an armed failure: once counts[op] reaches after, the operation
// fails with err, or crashes the FS.
type fault struct {
	armed bool
	after int
	err   error
	times int // failures left before the fault disarms itself; 0: until ClearFaults
	crash bool
	mode  CrashMode
}

// New wraps base. seed drives every random choice (short writes, torn tails),
// so a failing test can be replayed.
func New(base vfs.FS, seed uint64) *FS {
	return &FS{
		base:    base,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		crashed: make(chan struct{}),
		files:   map[string]*fileState{},
	}
}

// FailAfter makes operations of kind op fail with err once n more of them
// have succeeded (n = 0: the next one fails), until ClearFaults or a crash.
func (f *FS) FailAfter(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = fault{armed: true, after: f.counts[op] + n, err: err}
}

// FailTimes makes the next times operations of kind op fail with err once n
// more of them have succeeded; later ones succeed again. With
// syscall.ENOSPC it models a file system that was full for a moment.
func (f *FS) FailTimes(op Op, n, times int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = fault{armed: true, after: f.counts[op] + n, err: err, times: times}
}

// CrashAfter makes the FS crash (as Crash(mode)) when an operation of kind op
// starts after n more have succeeded; that operation fails with ErrCrashed
// without taking effect. Crashing on a sync models a power loss while the
// data being synced is still in flight.
func (f *FS) CrashAfter(op Op, n int, mode CrashMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = fault{armed: true, after: f.counts[op] + n, crash: true, mode: mode}
}

// ClearFaults disarms every injected fault.
func (f *FS) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = [numOps]fault{}
}

// Count returns how many operations of kind op succeeded so far.
func (f *FS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// Crashed returns a channel closed by the next crash.
func (f *FS) Crashed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// enter starts an operation of kind op (op < 0: one faults do not apply to)
// on a handle of generation gen (gen < 0: an FS-level operation). When err is
// nil, crashMu is held shared and the caller releases it; fail is then the
// injected error the operation must fail with, if any.
func (f *FS) enter(op Op, gen int) (fail, err error) {
	f.crashMu.RLock()
	f.mu.Lock()
	if gen >= 0 && gen != f.gen {
		f.mu.Unlock()
		f.crashMu.RUnlock()
		return nil, ErrCrashed
	}
	if op < 0 {
		f.mu.Unlock()
		return nil, nil
	}
	ft := f.faults[op]
	if !ft.armed || f.counts[op] < ft.after {
		f.counts[op]++
		f.mu.Unlock()
		return nil, nil
	}
	if ft.times > 0 {
		if f.faults[op].times--; f.faults[op].times == 0 {
			f.faults[op] = fault{}
		}
	}
	f.mu.Unlock()
	if ft.crash {
		f.crashMu.RUnlock()
		if err := f.Crash(ft.mode); err != nil {
			return nil, err
		}
		return nil, ErrCrashed
	}
	return ft.err, nil
}

const noFault Op = -1

// Crash simulates a power loss: every handle opened so far goes dead
// (operations fail with ErrCrashed), files created since their directory was
// last synced disappear, and every other file loses what was written after its
// last successful Sync, keeping a torn prefix of it in TornTail mode. The FS
// stays usable, as after a reboot; injected faults are disarmed.
func (f *FS) Crash(mode CrashMode) error {
	f.crashMu.Lock()
	defer f.crashMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	close(f.crashed)
	f.crashed = make(chan struct{})
	f.faults = [numOps]fault{}
	for name, st := range f.files {
		if st.unlinked {
			if err := f.base.Remove(name); err != nil {
				return fmt.Errorf("faultfs: crash: %w", err)
			}
			delete(f.files, name)
			continue
		}
		if err := f.crashFile(name, st, mode); err != nil {
			return fmt.Errorf("faultfs: crash %s: %w", name, err)
		}
	}
	return nil
}

func (f *FS) crashFile(name string, st *fileState, mode CrashMode) error {
	if len(st.writes) == 0 {
		return nil
	}
	file, err := f.base.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	// The writes since the last sync reach the disk in order, up to a cut:
	// none of them (DropUnsynced), or all before a random one and a prefix
	// of it (TornTail). The rest is undone, newest first.
	cut, prefix := 0, 0
	if mode == TornTail {
		cut = f.rng.IntN(len(st.writes) + 1)
		if cut < len(st.writes) {
			prefix = f.rng.IntN(st.writes[cut].n + 1)
		}
	}
	for i := len(st.writes) - 1; i >= cut; i-- {
		w := st.writes[i]
		from := 0
		if i == cut {
			from = prefix
		}
		if from < len(w.old) {
			if _, err := file.WriteAt(w.old[from:], w.off+int64(from)); err != nil {
				return err
			}
		}
	}
	end := st.synced
	for _, w := range st.writes[:cut] {
		end = max(end, w.off+int64(w.n))
	}
	if cut < len(st.writes) && prefix > 0 {
		end = max(end, st.writes[cut].off+int64(prefix))
	}
	if err := file.Truncate(end); err != nil {
		return err
	}
	if mode == TornTail && cut < len(st.writes) {
		w := st.writes[cut]
		var at int64
		var garbage []byte
		switch f.rng.IntN(3) {
		case 0: // garbage over part of the kept prefix
			if prefix > 0 {
				at = w.off + int64(f.rng.IntN(prefix))
				garbage = make([]byte, min(1+f.rng.IntN(64), int(w.off+int64(prefix)-at)))
			}
		case 1: // garbage after it
			at = w.off + int64(prefix)
			garbage = make([]byte, 1+f.rng.IntN(64))
		}
		for i := range garbage {
			garbage[i] = byte(f.rng.Uint32())
		}
		if len(garbage) > 0 {
			if _, err := file.WriteAt(garbage, at); err != nil {
				return err
			}
			end = max(end, at+int64(len(garbage)))
		}
	}
	st.synced, st.writes = end, nil // what survived a crash is on disk
	return nil
}

// Session returns a view of the FS for one process lifetime: once the FS
// crashes, every operation through the view fails with ErrCrashed, as the
// process that used it is dead. Use a new Session for the "restarted" process.
// Operations on the FS itself always act on the current state.
func (f *FS) Session() vfs.FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return session{f, f.gen}
}

type session struct {
	f   *FS
	gen int
}

func (s session) Create(name string) (vfs.File, error) { return s.f.create(name, s.gen) }
func (s session) Open(name string) (vfs.File, error)   { return s.f.open(name, s.gen) }
func (s session) Remove(name string) error             { return s.f.remove(name, s.gen) }
func (s session) Rename(oldname, newname string) error { return s.f.rename(oldname, newname, s.gen) }
func (s session) List(dir string) ([]string, error)    { return s.f.list(dir, s.gen) }
func (s session) MkdirAll(dir string) error            { return s.f.mkdirAll(dir, s.gen) }
func (s session) SyncDir(dir string) error             { return s.f.syncDir(dir, s.gen) }

// Create implements vfs.FS. The new file is lost by a crash until its
// directory is synced.
func (f *FS) Create(name string) (vfs.File, error) { return f.create(name, -1) }

// Open implements vfs.FS.
func (f *FS) Open(name string) (vfs.File, error) { return f.open(name, -1) }

// Remove implements vfs.FS; removals are modelled as durable at once.
func (f *FS) Remove(name string) error { return f.remove(name, -1) }

// Rename implements vfs.FS; renames are modelled as durable at once.
func (f *FS) Rename(oldname, newname string) error { return f.rename(oldname, newname, -1) }

// List implements vfs.FS.
func (f *FS) List(dir string) ([]string, error) { return f.list(dir, -1) }

// MkdirAll implements vfs.FS; directories are modelled as durable at once.
func (f *FS) MkdirAll(dir string) error { return f.mkdirAll(dir, -1) }

// SyncDir implements vfs.FS: files created in dir survive crashes from now on.
func (f *FS) SyncDir(dir string) error { return f.syncDir(dir, -1) }

func (f *FS) create(name string, gen int) (vfs.File, error) {
	name = filepath.Clean(name)
	if _, err := f.enter(noFault, gen); err != nil {
		return nil, err
	}
	defer f.crashMu.RUnlock()
	file, err := f.base.Create(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, existed := f.files[name]
	if !existed {
		st = &fileState{unlinked: true}
		f.files[name] = st
	}
	st.synced, st.writes = 0, nil // truncating an existing file is modelled as durable at once
	return &faultFile{fs: f, base: file, name: name, gen: f.gen}, nil
}

func (f *FS) open(name string, gen int) (vfs.File, error) {
	name = filepath.Clean(name)
	if _, err := f.enter(noFault, gen); err != nil {
		return nil, err
	}
	defer f.crashMu.RUnlock()
	file, err := f.base.Open(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		// A file this FS did not write is taken as durable.
		size, err := file.Size()
		if err != nil {
			file.Close()
			return nil, err
		}
		f.files[name] = &fileState{synced: size}
	}
	return &faultFile{fs: f, base: file, name: name, gen: f.gen}, nil
}

func (f *FS) remove(name string, gen int) error {
	name = filepath.Clean(name)
	if _, err := f.enter(noFault, gen); err != nil {
		return err
	}
	defer f.crashMu.RUnlock()
	if err := f.base.Remove(name); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.files, name)
	f.mu.Unlock()
	return nil
}

func (f *FS) rename(oldname, newname string, gen int) error {
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	if _, err := f.enter(noFault, gen); err != nil {
		return err
	}
	defer f.crashMu.RUnlock()
	if err := f.base.Rename(oldname, newname); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.files[oldname]; ok {
		delete(f.files, oldname)
		f.files[newname] = st
	}
	return nil
}

func (f *FS) list(dir string, gen int) ([]string, error) {
	if _, err := f.enter(noFault, gen); err != nil {
		return nil, err
	}
	defer f.crashMu.RUnlock()
	return f.base.List(dir)
}

func (f *FS) mkdirAll(dir string, gen int) error {
	if _, err := f.enter(noFault, gen); err != nil {
		return err
	}
	defer f.crashMu.RUnlock()
	return f.base.MkdirAll(dir)
}

func (f *FS) syncDir(dir string, gen int) error {
	dir = filepath.Clean(dir)
	fail, err := f.enter(OpSyncDir, gen)
	if err != nil {
		return err
	}
	defer f.crashMu.RUnlock()
	if fail != nil {
		return fail
	}
	if err := f.base.SyncDir(dir); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, st := range f.files {
		if filepath.Dir(name) == dir {
			st.unlinked = false
		}
	}
	return nil
}

type faultFile struct {
	fs   *FS
	base vfs.File
	name string
	gen  int
}

func (h *faultFile) WriteAt(p []byte, off int64) (int, error) {
	fail, err := h.fs.enter(OpWrite, h.gen)
	if err != nil {
		return 0, err
	}
	defer h.fs.crashMu.RUnlock()
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if fail != nil {
		p = p[:h.fs.rng.IntN(len(p)+1)] // a short write
	}
	if st, ok := h.fs.files[h.name]; ok {
		if err := st.wrote(h.base, off, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := h.base.WriteAt(p, off)
	if fail != nil {
		return n, fail
	}
	return n, err
}

func (h *faultFile) Sync() error {
	fail, err := h.fs.enter(OpSync, h.gen)
	if err != nil {
		return err
	}
	defer h.fs.crashMu.RUnlock()
	if fail != nil {
		return fail
	}
	size, err := h.base.Size()
	if err != nil {
		return err
	}
	if err := h.base.Sync(); err != nil {
		return err
	}
	h.fs.mu.Lock()
	if st, ok := h.fs.files[h.name]; ok {
		st.synced, st.writes = size, nil
	}
	h.fs.mu.Unlock()
	return nil
}

func (h *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if _, err := h.fs.enter(noFault, h.gen); err != nil {
		return 0, err
	}
	defer h.fs.crashMu.RUnlock()
	return h.base.ReadAt(p, off)
}

func (h *faultFile) Truncate(size int64) error {
	if _, err := h.fs.enter(noFault, h.gen); err != nil {
		return err
	}
	defer h.fs.crashMu.RUnlock()
	if err := h.base.Truncate(size); err != nil {
		return err
	}
	h.fs.mu.Lock()
	if st, ok := h.fs.files[h.name]; ok {
		st.truncated(size) // modelled as durable at once
	}
	h.fs.mu.Unlock()
	return nil
}

func (h *faultFile) Size() (int64, error) {
	if _, err := h.fs.enter(noFault, h.gen); err != nil {
		return 0, err
	}
	defer h.fs.crashMu.RUnlock()
	return h.base.Size()
}

// Close releases the underlying file, also for a handle made dead by a crash.
func (h *faultFile) Close() error { return h.base.Close() }
