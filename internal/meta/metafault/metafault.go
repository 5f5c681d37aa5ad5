// Package metafault wraps a meta.Store to inject latency and errors, per
// key prefix, for tests of what the broker does when metadata is slow or
// failing (as ledger/vfs/faultfs does for disks). Faults follow rules; a
// rule that fails only some calls draws from a generator seeded by the
// test, so a failing run can be replayed: the seed is logged when the test
// fails.
//
// It also counts the reads and writes per key, so tests can assert how many
// metadata calls an operation made.
//
// metafault knows the key layout of package meta (Namespace, Tenant): it is
// part of meta's tree, so tests elsewhere need not.
package metafault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// ErrInjected is the error injected when a rule gives none.
var ErrInjected = errors.New("metafault: injected metadata error")

// Op names a Store operation.
type Op string

// Store operations a rule may apply to.
const (
	OpGet    Op = "get"
	OpPut    Op = "put"
	OpDelete Op = "delete"
	OpList   Op = "list"
)

// Match selects the keys (for List: prefixes) a rule applies to.
type Match func(key string) bool

// Prefix matches keys that start with p.
func Prefix(p string) Match { return func(k string) bool { return strings.HasPrefix(k, p) } }

// Namespace matches every record of a namespace: its policies, its topics'
// policies and its partitioned topics.
func Namespace(ns naming.Namespace) Match {
	prefixes := []string{
		meta.NamespacePoliciesPrefix + ns.String(),
		meta.TopicPoliciesPrefix + ns.String() + "/",
		"/admin/partitioned-topics/" + ns.String() + "/",
	}
	return func(k string) bool {
		for _, p := range prefixes {
			if k == p || strings.HasPrefix(k, p) && (strings.HasSuffix(p, "/") || k[len(p)] == '/') {
				return true
			}
		}
		return false
	}
}

// NamespacePolicies matches the record of a namespace's policies only.
func NamespacePolicies(ns naming.Namespace) Match {
	key := meta.NamespacePoliciesPrefix + ns.String()
	return func(k string) bool { return k == key }
}

// Tenant matches a tenant's record.
func Tenant(name string) Match {
	key := meta.NamespacePoliciesPrefix + name
	return func(k string) bool { return k == key }
}

// Any matches every key.
func Any() Match { return func(string) bool { return true } }

// Rule injects a fault into the calls it matches.
type Rule struct {
	Match Match
	// Ops limits the rule to these operations (none: all but Watch).
	Ops []Op
	// Delay is waited before the call (cut short when its context ends,
	// which the call then returns).
	Delay time.Duration
	// Err is returned instead of calling the store (after Delay); nil
	// with Fail set returns ErrInjected.
	Err  error
	Fail bool
	// Probability applies the rule to that fraction of the calls it
	// matches (0 means always), drawn from the store's seeded generator.
	Probability float64
}

func (r *Rule) applies(op Op, key string) bool {
	if r.Match != nil && !r.Match(key) {
		return false
	}
	if len(r.Ops) == 0 {
		return true
	}
	for _, o := range r.Ops {
		if o == op {
			return true
		}
	}
	return false
}

// Store is a meta.Store that injects the faults of its rules.
type Store struct {
	meta.Store
	seed uint64

	mu     sync.Mutex
	rnd    *rand.Rand
	rules  map[int]*Rule
	nextID int
	calls  map[Op]map[string]int
	log    []string // the faults injected, in order, for replay reports
}

// Wrap returns a Store over s drawing from a generator seeded with seed.
func Wrap(s meta.Store, seed uint64) *Store {
	return &Store{
		Store: s,
		seed:  seed,
		rnd:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		rules: map[int]*Rule{},
		calls: map[Op]map[string]int{},
	}
}

// ForTest wraps s with a seed taken from the clock and logs the seed (and
// the faults injected) if the test fails, so the run can be replayed with
// Wrap and that seed.
func ForTest(t testing.TB, s meta.Store) *Store {
	seed := uint64(time.Now().UnixNano())
	f := Wrap(s, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metafault: seed %d; faults injected: %s", seed, strings.Join(f.Injected(), ", "))
		}
	})
	return f
}

// Seed returns the generator's seed.
func (s *Store) Seed() uint64 { return s.seed }

// Inject adds a rule and returns a function that removes it.
func (s *Store) Inject(r Rule) (remove func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.rules[id] = &r
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.rules, id)
		s.mu.Unlock()
	}
}

// Heal removes every rule.
func (s *Store) Heal() {
	s.mu.Lock()
	clear(s.rules)
	s.mu.Unlock()
}

// Calls returns how many times op was called on key (for List: on prefix).
func (s *Store) Calls(op Op, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op][key]
}

// CallsMatching returns how many times op was called on keys m matches.
func (s *Store) CallsMatching(op Op, m Match) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls[op] {
		if m(k) {
			n += c
		}
	}
	return n
}

// Injected lists the faults injected so far ("get /admin/...: delay 5s").
func (s *Store) Injected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// fault counts the call and returns what the matching rules inject. Rules
// are applied in the order they were added; the delays add up and the
// first error wins.
func (s *Store) fault(op Op, key string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[op] == nil {
		s.calls[op] = map[string]int{}
	}
	s.calls[op][key]++
	var delay time.Duration
	var err error
	for id := 0; id < s.nextID; id++ {
		r := s.rules[id]
		if r == nil || !r.applies(op, key) {
			continue
		}
		if r.Probability > 0 && s.rnd.Float64() >= r.Probability {
			continue
		}
		delay += r.Delay
		if err == nil && (r.Err != nil || r.Fail) {
			err = r.Err
			if err == nil {
				err = ErrInjected
			}
		}
	}
	if delay > 0 || err != nil {
		s.log = append(s.log, fmt.Sprintf("%s %s: delay %v err %v", op, key, delay, err))
	}
	return delay, err
}

func (s *Store) before(ctx context.Context, op Op, key string) error {
	delay, err := s.fault(op, key)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	return nil
}

// Get implements meta.Store.
func (s *Store) Get(ctx context.Context, key string) (meta.KV, error) {
	if err := s.before(ctx, OpGet, key); err != nil {
		return meta.KV{}, err
	}
	return s.Store.Get(ctx, key)
}

// Put implements meta.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, expected int64) (int64, error) {
	if err := s.before(ctx, OpPut, key); err != nil {
		return 0, err
	}
	return s.Store.Put(ctx, key, value, expected)
}

// Delete implements meta.Store.
func (s *Store) Delete(ctx context.Context, key string, expected int64) error {
	if err := s.before(ctx, OpDelete, key); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key, expected)
}

// List implements meta.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]meta.KV, error) {
	if err := s.before(ctx, OpList, prefix); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, prefix)
}

// TopicPolicies matches the record of t's policies (a partition's are its
// partitioned topic's).
func TopicPolicies(t naming.Topic) Match {
	key := meta.TopicPoliciesKey(t)
	return func(k string) bool { return k == key }
}
