package faultfs

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

// write appends s.
func write(t *testing.T, f vfs.File, s string) {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(s), size); err != nil {
		t.Fatal(err)
	}
}

func contents(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && size > 0 {
		t.Fatal(err)
	}
	return b
}

func TestCrashDropsUnsynced(t *testing.T) {
	fs := New(vfs.NewMem(), 1)
	fs.MkdirAll("/d")
	f, _ := fs.Create("/d/a")
	write(t, f, "durable")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.SyncDir("/d")
	write(t, f, " lost")
	g, _ := fs.Create("/d/b") // its directory is never synced
	write(t, g, "x")
	g.Sync()

	if err := fs.Crash(DropUnsynced); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, fs, "/d/a"); string(got) != "durable" {
		t.Fatalf("after crash: %q", got)
	}
	if _, err := fs.Open("/d/b"); err == nil {
		t.Fatal("a file whose directory was never synced survived the crash")
	}
	if _, err := f.WriteAt([]byte("y"), 0); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write on a pre-crash handle: %v", err)
	}
	f.Close()
}

func TestCrashTornTail(t *testing.T) {
	tails := map[int]bool{}
	garbled := false
	for seed := range uint64(50) {
		fs := New(vfs.NewMem(), seed)
		fs.MkdirAll("/d")
		f, _ := fs.Create("/d/a")
		fs.SyncDir("/d")
		write(t, f, "synced|")
		f.Sync()
		unsynced := "0123456789abcdefghij"
		write(t, f, unsynced)
		fs.Crash(TornTail)
		got := contents(t, fs, "/d/a")
		if !bytes.HasPrefix(got, []byte("synced|")) {
			t.Fatalf("seed %d: synced bytes damaged: %q", seed, got)
		}
		tail := got[len("synced|"):]
		tails[len(tail)] = true
		if !bytes.HasPrefix([]byte(unsynced), tail) {
			garbled = true
		}
	}
	if len(tails) < 5 || !garbled {
		t.Fatalf("torn tails are not varied: lengths %v, garbled %v", tails, garbled)
	}
}

func TestFailAfter(t *testing.T) {
	fs := New(vfs.NewMem(), 3)
	fs.MkdirAll("/d")
	f, _ := fs.Create("/d/a")
	boom := errors.New("boom")
	fs.FailAfter(OpSync, 2, boom)
	for i := range 4 {
		err := f.Sync()
		if (i >= 2) != errors.Is(err, boom) {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	fs.FailAfter(OpWrite, 0, boom)
	if n, err := f.WriteAt([]byte("abcdef"), 0); !errors.Is(err, boom) || n > 6 {
		t.Fatalf("write = %d, %v", n, err)
	}
	fs.ClearFaults()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if fs.Count(OpSync) != 3 {
		t.Fatalf("Count(OpSync) = %d, want 3", fs.Count(OpSync))
	}
}

func TestFailTimes(t *testing.T) {
	fs := New(vfs.NewMem(), 3)
	fs.MkdirAll("/d")
	f, _ := fs.Create("/d/a")
	fs.FailTimes(OpWrite, 1, 2, syscall.ENOSPC)
	for i := range 5 {
		_, err := f.WriteAt([]byte("abc"), 0)
		if (i == 1 || i == 2) != errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

func TestCrashAfterSync(t *testing.T) {
	fs := New(vfs.NewMem(), 4)
	fs.MkdirAll("/d")
	f, _ := fs.Create("/d/a")
	fs.SyncDir("/d")
	crashed := fs.Crashed()
	fs.CrashAfter(OpSync, 1, DropUnsynced)
	write(t, f, "one")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	write(t, f, "two")
	if err := f.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("sync that should crash: %v", err)
	}
	select {
	case <-crashed:
	default:
		t.Fatal("Crashed channel not closed")
	}
	if got := contents(t, fs, "/d/a"); string(got) != "one" {
		t.Fatalf("after crash in sync: %q", got)
	}
}

// Overwrites of durable bytes (preallocated space) are undone by a crash, or
// kept up to a torn point in write order; the durable bytes are never lost
// beyond the writes that replaced them.
func TestCrashUndoesOverwrites(t *testing.T) {
	zeros := string(make([]byte, 16))
	for _, mode := range []CrashMode{DropUnsynced, TornTail} {
		kept := map[int]bool{}
		for seed := range uint64(60) {
			fs := New(vfs.NewMem(), seed)
			fs.MkdirAll("/d")
			f, _ := fs.Create("/d/a")
			fs.SyncDir("/d")
			write(t, f, zeros)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("aaaa"), 0)
			f.WriteAt([]byte("bbbb"), 4)
			f.WriteAt([]byte("cc"), 14) // extends the file by 2
			if err := fs.Crash(mode); err != nil {
				t.Fatal(err)
			}
			got := contents(t, fs, "/d/a")
			if len(got) < 16 {
				t.Fatalf("%v seed %d: durable size lost: %q", mode, seed, got)
			}
			if mode == DropUnsynced {
				if string(got) != zeros {
					t.Fatalf("seed %d: unsynced overwrites survived: %q", seed, got)
				}
				continue
			}
			// Written in order: a byte of a later write may survive only if
			// every earlier write did (garbage aside, which lands at the cut).
			n := 0
			for n < 8 && got[n] == "aaaabbbb"[n] {
				n++
			}
			kept[n] = true
		}
		if mode == TornTail && len(kept) < 4 {
			t.Fatalf("torn overwrites are not varied: prefixes kept %v", kept)
		}
	}
}
