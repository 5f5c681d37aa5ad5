package supervise

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLoopRestartsWithGrowingBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	sessions := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, func(context.Context) error {
			sessions++
			if sessions == 4 {
				cancel()
				return nil
			}
			return errors.New("boom")
		}, func(err error, b time.Duration) {
			if err.Error() != "boom" {
				t.Errorf("err %v", err)
			}
			waits = append(waits, b)
		})
	}()
	<-done
	want := []time.Duration{MinBackoff, 2 * MinBackoff, 4 * MinBackoff}
	if len(waits) != len(want) {
		t.Fatalf("waits %v", waits)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

func TestLoopStopsDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	failed := make(chan struct{}, 1)
	go func() {
		defer close(done)
		Loop(ctx, func(context.Context) error { return errors.New("x") }, func(error, time.Duration) {
			select {
			case failed <- struct{}{}:
			default:
			}
		})
	}()
	<-failed
	cancel()
	<-done
}
