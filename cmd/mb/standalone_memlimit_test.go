package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		limit, cache, want int64
	}{
		{0, 512 << 20, 1024 << 20},
		{0, 0, 1024 << 20},
		{0, 256 << 20, 640 << 20},
		{300 << 20, 512 << 20, 300 << 20},
	} {
		setMemoryLimit(log, c.limit, c.cache)
		if got := debug.SetMemoryLimit(-1); got != c.want {
			t.Errorf("limit %d cache %d: memory limit %d, want %d", c.limit, c.cache, got, c.want)
		}
	}
	debug.SetMemoryLimit(123 << 20)
	setMemoryLimit(log, -1, 512<<20)
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("-1 changed the limit to %d", got)
	}
}
