package delayed

import (
	"slices"
	"sort"
	"unsafe"
)

// blockSize is the number of keys of one window block (2 KiB).
const blockSize = 128

// maxFreeBlocks bounds the emptied blocks kept for reuse.
const maxFreeBlocks = 4

// window is the in-memory part of an index: an ordered set of keys stored in
// sorted blocks of at most blockSize keys. Inserting costs a binary search and
// a move of at most one block; taking the smallest or largest key is O(1)
// amortized. Every block but the first and the last is at least half full,
// so n keys take at most (2 + 2n/blockSize) blocks: about 32 bytes per key.
type window struct {
	blocks [][]key // sorted, non-empty, each with capacity blockSize
	n      int
	free   [][]key
}

func (w *window) len() int { return w.n }

func (w *window) min() key { return w.blocks[0][0] }

func (w *window) max() key {
	b := w.blocks[len(w.blocks)-1]
	return b[len(b)-1]
}

func (w *window) newBlock() []key {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]key, 0, blockSize)
}

func (w *window) release(b []key) {
	if len(w.free) < maxFreeBlocks {
		w.free = append(w.free, b[:0])
	}
}

// insert adds k; false when it was present.
func (w *window) insert(k key) bool {
	if w.n == 0 || w.max().less(k) {
		w.appendMax(k)
		return true
	}
	// The first block whose last key is >= k exists since k <= max.
	i := sort.Search(len(w.blocks), func(i int) bool {
		b := w.blocks[i]
		return !b[len(b)-1].less(k)
	})
	b := w.blocks[i]
	j := sort.Search(len(b), func(j int) bool { return !b[j].less(k) })
	if b[j] == k {
		return false
	}
	if len(b) == blockSize {
		right := append(w.newBlock(), b[blockSize/2:]...)
		b = b[:blockSize/2]
		w.blocks[i] = b
		w.blocks = slices.Insert(w.blocks, i+1, right)
		if j > blockSize/2 {
			i, b, j = i+1, right, j-blockSize/2
		}
	}
	w.blocks[i] = slices.Insert(b, j, k) // in place: len(b) < cap(b)
	w.n++
	return true
}

// appendMax adds k, which is greater than every key held.
func (w *window) appendMax(k key) {
	if n := len(w.blocks); n > 0 && len(w.blocks[n-1]) < blockSize {
		w.blocks[n-1] = append(w.blocks[n-1], k)
	} else {
		w.blocks = append(w.blocks, append(w.newBlock(), k))
	}
	w.n++
}

// popMax removes and returns the largest key. The window must not be empty.
func (w *window) popMax() key {
	i := len(w.blocks) - 1
	b := w.blocks[i]
	k := b[len(b)-1]
	if len(b) == 1 {
		w.release(b)
		w.blocks[i] = nil
		w.blocks = w.blocks[:i]
	} else {
		w.blocks[i] = b[:len(b)-1]
	}
	w.n--
	return k
}

// popDue removes the smallest keys due at now or earlier, at most limit, and
// appends their entry ids to out. It returns the first and last key removed
// and how many were.
func (w *window) popDue(now int64, limit int, out []int64) ([]int64, key, key, int) {
	var first, last key
	taken := 0
	for taken < limit && len(w.blocks) > 0 {
		b := w.blocks[0]
		c := 0
		for c < len(b) && taken+c < limit && b[c].at <= now {
			out = append(out, b[c].id)
			c++
		}
		if c == 0 {
			break
		}
		if taken == 0 {
			first = b[0]
		}
		last = b[c-1]
		taken += c
		w.n -= c
		if c == len(b) {
			w.release(b)
			w.blocks[0] = nil
			w.blocks = slices.Delete(w.blocks, 0, 1)
			continue
		}
		n := copy(b, b[c:])
		w.blocks[0] = b[:n]
		break
	}
	return out, first, last, taken
}

func (w *window) reset() {
	for _, b := range w.blocks {
		w.release(b)
	}
	w.blocks, w.n = nil, 0
}

// bytes is the memory the window holds.
func (w *window) bytes() int {
	const keySize, sliceSize = int(unsafe.Sizeof(key{})), int(unsafe.Sizeof([]key(nil)))
	n := (cap(w.blocks) + cap(w.free)) * sliceSize
	for _, b := range w.blocks {
		n += cap(b) * keySize
	}
	for _, b := range w.free {
		n += cap(b) * keySize
	}
	return n
}

// windowBound is the most memory a window that never held more than n keys
// holds: inner blocks are at least half full (32 B a key), plus the first
// and last blocks, the free blocks and the block slice.
func windowBound(n int) int { return 33*n + 16<<10 }
