package supervise

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by Registry.Put after Close.
var ErrClosed = errors.New("worker is closed")

// Registry holds a worker's runners (one a function or connector) by key.
type Registry[R any] struct {
	mu     sync.Mutex
	m      map[string]R
	closed bool
}

// Put stores r under key and returns the runner it replaces, if any;
// after Close it stores nothing and returns ErrClosed.
func (g *Registry[R]) Put(key string, r R) (old R, replaced bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return old, false, ErrClosed
	}
	if g.m == nil {
		g.m = map[string]R{}
	}
	old, replaced = g.m[key]
	g.m[key] = r
	return old, replaced, nil
}

// Get returns the runner under key.
func (g *Registry[R]) Get(key string) (R, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.m[key]
	return r, ok
}

// Remove takes the runner under key out.
func (g *Registry[R]) Remove(key string) (R, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.m[key]
	delete(g.m, key)
	return r, ok
}

// Keys lists the keys of the runners held.
func (g *Registry[R]) Keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := make([]string, 0, len(g.m))
	for k := range g.m {
		keys = append(keys, k)
	}
	return keys
}

// Close refuses further runners and returns those held, for stopping.
func (g *Registry[R]) Close() []R {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	all := make([]R, 0, len(g.m))
	for _, r := range g.m {
		all = append(all, r)
	}
	g.m = nil
	return all
}

// IDs is the instance list of a start/stop call: nil (all) for instance < 0.
func IDs(instance int) []int {
	if instance < 0 {
		return nil
	}
	return []int{instance}
}

// Register registers the collectors when reg is not nil.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg != nil {
		reg.MustRegister(cs...)
	}
}

// Forget deletes the series matching l (a deleted function's or
// connector's) from every vector.
func Forget(l prometheus.Labels, vecs ...interface {
	DeletePartialMatch(prometheus.Labels) int
}) {
	for _, v := range vecs {
		v.DeletePartialMatch(l)
	}
}
