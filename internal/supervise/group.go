package supervise

import "sync"

// Member is a worker's instance type: it embeds *Instance and runs
// sessions until its context ends.
type Member interface {
	Supervised() *Instance
	Run()
}

// Group holds the parallel instances of one function or connector, by id
// (a stopped one is the zero T).
type Group[T Member] struct {
	mu    sync.Mutex
	items []T
	has   []bool
}

// NewGroup makes a group of n instances, none started.
func NewGroup[T Member](n int) *Group[T] {
	return &Group[T]{items: make([]T, n), has: make([]bool, n)}
}

func (g *Group[T]) all(ids []int) []int {
	if len(ids) == 0 {
		for id := range g.items {
			ids = append(ids, id)
		}
	}
	return ids
}

// Start starts the instances that are not running (all when ids is
// empty); newMember builds one around its supervision core.
func (g *Group[T]) Start(newMember func(*Instance) T, ids ...int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range g.all(ids) {
		if id < 0 || id >= len(g.items) || g.has[id] {
			continue
		}
		core := newInstance(id)
		m := newMember(core)
		g.items[id], g.has[id] = m, true
		go func() {
			defer close(core.done)
			m.Run()
		}()
	}
}

// Stop stops instances (all when ids is empty) and waits for them;
// unsubscribe makes the last one stopped remove the subscription.
func (g *Group[T]) Stop(unsubscribe bool, ids ...int) {
	g.mu.Lock()
	var stop []*Instance
	var zero T
	for _, id := range g.all(ids) {
		if id >= 0 && id < len(g.items) && g.has[id] {
			stop = append(stop, g.items[id].Supervised())
			g.items[id], g.has[id] = zero, false
		}
	}
	g.mu.Unlock()
	for k, i := range stop {
		if unsubscribe && k == len(stop)-1 {
			i.mu.Lock()
			i.unsubscribe = true
			i.mu.Unlock()
		}
		i.cancel()
		<-i.done
	}
}

// At returns instance id and whether it runs.
func (g *Group[T]) At(id int) (T, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id < 0 || id >= len(g.items) || !g.has[id] {
		var zero T
		return zero, false
	}
	return g.items[id], true
}

// Len is the group's parallelism.
func (g *Group[T]) Len() int { return len(g.items) }
