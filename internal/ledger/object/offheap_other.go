//go:build !unix

package object

// mapBuf: without mmap, block buffers live on the Go heap.
func mapBuf(n int) []byte { return make([]byte, n) }

// unmapBuf leaves the buffer to the collector.
func unmapBuf([]byte) {}
