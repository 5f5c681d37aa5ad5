package supervise

import (
	"context"
	"errors"
	"log/slog"
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

type member struct {
	*Instance
	sessions chan int
}

func (m *member) Run() {
	m.Instance.Run(slog.Default(), "test", func(ctx context.Context) error {
		m.MarkRunning()
		m.sessions <- m.ID
		<-ctx.Done()
		return nil
	}, nil)
}

func TestGroupStartsStopsAndUnsubscribesLast(t *testing.T) {
	g := NewGroup[*member](3)
	sessions := make(chan int, 3)
	var made []*member
	g.Start(func(core *Instance) *member {
		m := &member{Instance: core, sessions: sessions}
		made = append(made, m)
		return m
	})
	for range 3 {
		<-sessions
	}
	g.Start(func(core *Instance) *member { t.Fatal("started twice"); return nil }, 1)
	if _, ok := g.At(2); !ok {
		t.Fatal("instance 2 not running")
	}
	g.Stop(false, 2)
	if _, ok := g.At(2); ok || made[2].Unsubscribing() {
		t.Fatal("instance 2 still there or unsubscribing")
	}
	g.Stop(true)
	if made[0].Unsubscribing() || !made[1].Unsubscribing() {
		t.Fatalf("only the last one stopped unsubscribes: %v %v", made[0].Unsubscribing(), made[1].Unsubscribing())
	}
	if made[0].Running.Load() {
		t.Fatal("stopped instance still marked running")
	}
}

func TestRegistryRefusesAfterClose(t *testing.T) {
	var r Registry[int]
	if _, replaced, _ := r.Put("a", 1); replaced {
		t.Fatal("replaced nothing")
	}
	if old, replaced, _ := r.Put("a", 2); !replaced || old != 1 {
		t.Fatalf("old %d replaced %v", old, replaced)
	}
	if all := r.Close(); len(all) != 1 || all[0] != 2 {
		t.Fatalf("close returned %v", all)
	}
	if _, _, err := r.Put("b", 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
}
