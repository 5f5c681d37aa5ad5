package delayed

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWindowAgainstModel runs random operations on a window and on a sorted
// slice and compares them.
func TestDelayedWindowAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var w window
	var model []key
	maxN := 0
	for step := range 200_000 {
		switch op := rng.IntN(10); {
		case op < 6:
			k := key{at: rng.Int64N(2000), id: rng.Int64N(50)}
			i, found := slices.BinarySearchFunc(model, k, cmpKey)
			if got := w.insert(k); got == found {
				t.Fatalf("step %d: insert(%v) = %v, present %v", step, k, got, found)
			}
			if !found {
				model = slices.Insert(model, i, k)
			}
		case op < 7 && len(model) > 0:
			k := w.popMax()
			if want := model[len(model)-1]; k != want {
				t.Fatalf("step %d: popMax = %v, want %v", step, k, want)
			}
			model = model[:len(model)-1]
		case op < 9:
			now, limit := rng.Int64N(2000), 1+rng.IntN(300)
			ids, first, last, n := w.popDue(now, limit, nil)
			var want []key
			for len(want) < limit && len(model) > 0 && model[0].at <= now {
				want, model = append(want, model[0]), model[1:]
			}
			if n != len(want) || len(ids) != n {
				t.Fatalf("step %d: popDue took %d (%d ids), want %d", step, n, len(ids), len(want))
			}
			for i, k := range want {
				if ids[i] != k.id {
					t.Fatalf("step %d: popDue id %d = %d, want %d", step, i, ids[i], k.id)
				}
			}
			if n > 0 && (first != want[0] || last != want[n-1]) {
				t.Fatalf("step %d: popDue range %v..%v, want %v..%v", step, first, last, want[0], want[n-1])
			}
		default:
			if rng.IntN(100) == 0 {
				w.reset()
				model = model[:0]
			}
		}
		if w.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, w.len(), len(model))
		}
		if len(model) > 0 && (w.min() != model[0] || w.max() != model[len(model)-1]) {
			t.Fatalf("step %d: min/max %v/%v, want %v/%v", step, w.min(), w.max(), model[0], model[len(model)-1])
		}
		maxN = max(maxN, len(model))
		if step%1000 == 0 {
			checkWindow(t, &w, maxN)
		}
	}
}

// checkWindow verifies the block invariants, memory bound included.
func checkWindow(t *testing.T, w *window, maxN int) {
	t.Helper()
	n := 0
	var prev *key
	for i, b := range w.blocks {
		if len(b) == 0 || cap(b) != blockSize {
			t.Fatalf("block %d: len %d cap %d", i, len(b), cap(b))
		}
		if i > 0 && i < len(w.blocks)-1 && len(b) < blockSize/2 {
			t.Fatalf("inner block %d is less than half full (%d)", i, len(b))
		}
		for j := range b {
			if prev != nil && !prev.less(b[j]) {
				t.Fatalf("block %d: keys out of order", i)
			}
			prev = &b[j]
		}
		n += len(b)
	}
	if n != w.n {
		t.Fatalf("window counts %d keys, holds %d", w.n, n)
	}
	if got, bound := w.bytes(), windowBound(maxN); got > bound {
		t.Fatalf("window that held at most %d keys holds %d bytes, bound %d", maxN, got, bound)
	}
}

func cmpKey(a, b key) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}
