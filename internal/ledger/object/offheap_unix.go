//go:build unix

package object

import "syscall"

// mapBuf returns n bytes of anonymous memory outside the Go heap: the
// collector neither scans it nor counts it toward its heap goal (which is
// twice the live heap), and unmapBuf returns it to the system at once.
// Returns nil when the mapping fails (the caller falls back to the heap).
func mapBuf(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	return b
}

// unmapBuf releases a buffer of mapBuf. Nothing may refer to it after.
func unmapBuf(b []byte) { _ = syscall.Munmap(b) }
