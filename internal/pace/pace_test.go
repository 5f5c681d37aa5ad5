package pace

import (
	"context"
	"testing"
	"time"
)

// TestPacerPausesWhileBusy: while busy, each step is followed by a pause as
// long as the step ran (at most maxPause); idle, by none.
func TestPacerPausesWhileBusy(t *testing.T) {
	var a Activity
	p := New(a.Busy)
	var pauses []time.Duration
	p.wait = func(_ context.Context, d time.Duration) error { pauses = append(pauses, d); return nil }
	step := func(d time.Duration) {
		t.Helper()
		p.mu.Lock()
		p.start = time.Now().Add(-d) // the step ran for d
		p.mu.Unlock()
		if err := p.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step(20 * time.Millisecond)
	if len(pauses) != 0 {
		t.Fatalf("idle: paused %v", pauses)
	}
	a.Touch()
	if !a.Busy() {
		t.Fatal("not busy right after a touch")
	}
	step(20 * time.Millisecond)
	step(time.Second)
	if len(pauses) != 2 || pauses[0] < 20*time.Millisecond || pauses[0] > time.Second || pauses[1] != maxPause {
		t.Fatalf("busy: pauses %v, want about 20 ms then %v", pauses, maxPause)
	}
	a.last.Store(time.Now().Add(-2 * BusyWindow).UnixNano())
	step(20 * time.Millisecond)
	if len(pauses) != 2 {
		t.Fatalf("idle again: paused %v", pauses[2:])
	}
}

// TestPacerStopsWithContext: a pause ends with its context; a nil pacer
// never pauses.
func TestPacerStopsWithContext(t *testing.T) {
	var a Activity
	a.Touch()
	p := New(a.Busy)
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Step(ctx); err == nil {
		t.Fatal("a cancelled pause returned no error")
	}
	var nilPacer *Pacer
	if err := nilPacer.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}
