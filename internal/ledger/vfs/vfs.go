package vfs

import "io"

// FS is the set of filesystem operations the journal needs. Names are paths
// in the host's syntax.
type FS interface {
	// Create creates the named file, truncating it when it exists, opened for
	// reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file, replacing newname when it exists.
	Rename(oldname, newname string) error
	// List returns the names of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// MkdirAll creates dir and its missing parents.
	MkdirAll(dir string) error
	// SyncDir makes the creation, removal and renaming of entries of dir
	// durable.
	SyncDir(dir string) error
}

// File is an open file. Reads and writes are positional: the journal knows
// where its records go, and overwrites space it preallocated. A File is safe
// for concurrent use by one writer and many readers.
type File interface {
	io.ReaderAt
	io.Closer
	// WriteAt writes p at off, extending the file (with zeros up to off)
	// when off+len(p) is beyond its end.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the data written so far durable (fdatasync where the system
	// has it).
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
}

// RandomAccess is implemented by files whose reads can be declared not
// sequential, so that the system does not read ahead of them
// (posix_fadvise POSIX_FADV_RANDOM on the open file). Background work that
// reads old data in small steps then has only its own step in the disk's
// queue: the kernel's readahead of a sequential reader queues megabytes
// ahead of the journal's fdatasync (docs/benchmarks.md, session 13).
type RandomAccess interface {
	AdviseRandom() error
}
