package memory

import (
	"context"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Store is an in-memory ledger.Store. Use New.
type Store struct {
	mu      sync.Mutex
	closed  bool
	lastID  int64                 // last ledger id handed out
	ledgers map[string]*data      // every existing ledger
	open    map[string]*memLedger // open handles

	q *queue
}

var _ ledger.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	s := &Store{ledgers: map[string]*data{}, open: map[string]*memLedger{}, q: newQueue()}
	go s.q.run()
	return s
}

// Open implements ledger.Store.
func (s *Store) Open(ctx context.Context, topic string) (ledger.Ledger, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	if l := s.open[topic]; l != nil {
		return l, nil
	}
	d := s.ledgers[topic]
	if d == nil {
		s.lastID++
		d = &data{name: topic, id: s.lastID, last: -1, cursors: map[string][]byte{}, changed: make(chan struct{})}
		s.ledgers[topic] = d
	}
	l := &memLedger{s: s, d: d}
	s.open[topic] = l
	return l, nil
}

// Delete implements ledger.Store.
func (s *Store) Delete(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ledger.ErrClosed
	}
	if s.ledgers[topic] == nil {
		s.mu.Unlock()
		return ledger.ErrNotFound
	}
	l := s.open[topic]
	s.mu.Unlock()
	if l != nil {
		l.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ledgers, topic)
	return nil
}

// Topics implements ledger.Store.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	topics := make([]string, 0, len(s.ledgers))
	for name := range s.ledgers {
		topics = append(topics, name)
	}
	return topics, nil
}

// Close implements ledger.Store: it closes every ledger once its pending
// appends completed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ledger.ErrClosed
	}
	s.closed = true
	open := make([]*memLedger, 0, len(s.open))
	for _, l := range s.open {
		open = append(open, l)
	}
	s.mu.Unlock()
	for _, l := range open {
		l.Close()
	}
	s.q.stop()
	return nil
}

// queue completes appends in order on its own goroutine, as the durable store
// does after an fsync.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []item
	stopped bool
	exited  chan struct{}
}

type item struct {
	d    *data // nil: a barrier
	id   int64
	buf  []byte
	done func(int64, error)
	err  error
}

func newQueue() *queue {
	q := &queue{exited: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push enqueues it, or completes it with ErrClosed on a new goroutine once the
// queue stopped.
func (q *queue) push(it item) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		go it.done(-1, ledger.ErrClosed)
		return
	}
	q.items = append(q.items, it)
	q.cond.Signal()
	q.mu.Unlock()
}

// barrier waits until everything pushed before it completed.
func (q *queue) barrier() {
	ch := make(chan struct{})
	q.push(item{done: func(int64, error) { close(ch) }})
	<-ch
}

func (q *queue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.cond.Signal()
	q.mu.Unlock()
	<-q.exited
}

func (q *queue) run() {
	defer close(q.exited)
	var batch []item
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.stopped {
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		batch, q.items = q.items, batch[:0]
		q.mu.Unlock()
		for i := range batch {
			it := &batch[i]
			if it.d != nil && it.err == nil {
				it.d.publish(it.id, it.buf)
			}
			it.done(it.id, it.err)
			*it = item{}
		}
	}
}
