//go:build !linux

package vfs

import "os"

// datasync falls back to fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// adviseRandom has nothing to tell where posix_fadvise is not used.
func adviseRandom(*os.File) error { return nil }
