package objstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrInjected is the error of a failure injected by Faulty.
var ErrInjected = errors.New("objstore: injected fault")

// Faults configures Faulty. Rates are probabilities in [0, 1] drawn per
// call from a generator seeded with Seed, so a run with the same seed and
// the same sequence of calls injects the same faults.
type Faults struct {
	Seed uint64
	// FailRate: the call fails with ErrInjected without reaching the store.
	FailRate float64
	// SlowRate: the call waits SlowDelay (or until its context ends) first.
	SlowRate  float64
	SlowDelay time.Duration
	// TornRate: a Put stores only a prefix of the data and fails; a Get
	// returns the data with one byte flipped.
	TornRate float64
}

// Faulty wraps a Store and injects faults, for tests.
type Faulty struct {
	inner Store
	mu    sync.Mutex
	f     Faults
	rng   *rand.Rand
	down  bool
	log   []string
}

// NewFaulty wraps inner.
func NewFaulty(inner Store, f Faults) *Faulty {
	return &Faulty{inner: inner, f: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))}
}

// SetDown makes every call fail (true) until set back (false).
func (s *Faulty) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetFaults replaces the rates (the generator keeps its state).
func (s *Faulty) SetFaults(f Faults) {
	s.mu.Lock()
	f.Seed = s.f.Seed
	s.f = f
	s.mu.Unlock()
}

// Log returns the faults injected so far ("op key: fault"), to compare runs.
func (s *Faulty) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

type fault int

const (
	none fault = iota
	fail
	slow
	torn
)

// draw decides the fault of one call; one draw per kind keeps the sequence
// replayable whatever the rates.
func (s *Faulty) draw(op, key string) (fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pf, ps, pt := s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
	var f fault
	switch {
	case s.down || pf < s.f.FailRate:
		f = fail
	case pt < s.f.TornRate && (op == "put" || op == "get"):
		f = torn
	case ps < s.f.SlowRate:
		f = slow
	}
	if f != none {
		s.log = append(s.log, fmt.Sprintf("%s %s: %s", op, key, [...]string{"", "fail", "slow", "torn"}[f]))
	}
	return f, s.f.SlowDelay
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Put implements Store.
func (s *Faulty) Put(ctx context.Context, key string, data []byte, ifNoneMatch bool) error {
	switch f, d := s.draw("put", key); f {
	case fail:
		return fmt.Errorf("put %s: %w", key, ErrInjected)
	case slow:
		if err := wait(ctx, d); err != nil {
			return err
		}
	case torn:
		if err := s.inner.Put(ctx, key, data[:len(data)/2], ifNoneMatch); err != nil {
			return err
		}
		return fmt.Errorf("put %s: torn: %w", key, ErrInjected)
	}
	return s.inner.Put(ctx, key, data, ifNoneMatch)
}

// Get implements Store.
func (s *Faulty) Get(ctx context.Context, key string, off, length int64) ([]byte, error) {
	f, d := s.draw("get", key)
	switch f {
	case fail:
		return nil, fmt.Errorf("get %s: %w", key, ErrInjected)
	case slow:
		if err := wait(ctx, d); err != nil {
			return nil, err
		}
	}
	data, err := s.inner.Get(ctx, key, off, length)
	if err == nil && f == torn && len(data) > 0 {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0x40
	}
	return data, err
}

// Delete implements Store.
func (s *Faulty) Delete(ctx context.Context, key string) error {
	switch f, d := s.draw("delete", key); f {
	case fail:
		return fmt.Errorf("delete %s: %w", key, ErrInjected)
	case slow:
		if err := wait(ctx, d); err != nil {
			return err
		}
	}
	return s.inner.Delete(ctx, key)
}

// List implements Store.
func (s *Faulty) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	switch f, d := s.draw("list", prefix); f {
	case fail:
		return nil, fmt.Errorf("list %s: %w", prefix, ErrInjected)
	case slow:
		if err := wait(ctx, d); err != nil {
			return nil, err
		}
	}
	return s.inner.List(ctx, prefix)
}
