package etcd

import (
	"context"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch implements meta.Store. It reads the current revision first, so
// every change committed after Watch returns is delivered; when that read
// fails the watch starts with an EventReset once etcd answers again.
func (s *Store) Watch(ctx context.Context, prefix string) <-chan meta.Event {
	rev, err := s.revision(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("metadata watch starts without a revision; it resets when etcd answers", "prefix", prefix, "err", err)
		}
		rev = -1
	}
	return s.watchFrom(ctx, prefix, rev+1)
}

// watchFrom watches from revision from (0: from etcd's current revision,
// beginning with a reset).
func (s *Store) watchFrom(ctx context.Context, prefix string, from int64) <-chan meta.Event {
	out := make(chan meta.Event, 64)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(out)
		return out
	}
	s.wg.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer stop()
		defer cancel()
		w := watch{s: s, out: out, key: s.rangeKey(prefix), prefix: prefix, next: from}
		w.run(ctx)
	}()
	return out
}

// watch is one Watch's state: next is the revision to resume from (0:
// unknown, then the next watch starts from etcd's current revision and
// begins with a reset).
type watch struct {
	s      *Store
	out    chan<- meta.Event
	key    string
	prefix string
	next   int64
}

// Watch retry pauses after a watch ended with an error.
const (
	minWatchBackoff = 50 * time.Millisecond
	maxWatchBackoff = 2 * time.Second
)

func (w *watch) run(ctx context.Context) {
	backoff := minWatchBackoff
	for ctx.Err() == nil {
		progressed := w.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = minWatchBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxWatchBackoff)
	}
}

// once runs one etcd watch until it ends; it reports whether the watch was
// established.
func (w *watch) once(ctx context.Context) (established bool) {
	// Without a leader a member's watch would silently stall: require one,
	// so the watch ends and is made again on a member that has one.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify(), clientv3.WithProgressNotify()}
	reset := w.next == 0
	if !reset {
		opts = append(opts, clientv3.WithRev(w.next))
	}
	for resp := range w.s.c.Watch(wctx, w.key, opts...) {
		if resp.CompactRevision != 0 {
			// The history from w.next on is gone: start again at the oldest
			// revision etcd still has, and have the receiver re-read.
			w.s.log.Warn("metadata watch lost history to compaction; receivers re-read", "prefix", w.prefix,
				"from", w.next, "compacted", resp.CompactRevision)
			w.next = resp.CompactRevision
			w.s.m.reset()
			w.send(ctx, meta.Event{Type: meta.EventReset, Revision: w.next})
			return true
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.s.log.Warn("metadata watch ended; resuming", "prefix", w.prefix, "from", w.next, "err", err)
				w.s.m.observe("watch", 0, err)
			}
			return established
		}
		if resp.Created {
			established = true
			if reset {
				w.next = resp.Header.Revision + 1
				w.s.m.reset()
				if !w.send(ctx, meta.Event{Type: meta.EventReset, Revision: w.next}) {
					return true
				}
				reset = false
			}
			continue
		}
		if resp.IsProgressNotify() {
			w.next = max(w.next, resp.Header.Revision+1)
			continue
		}
		for _, ev := range resp.Events {
			if !w.send(ctx, w.event(ev)) {
				return true
			}
			w.next = ev.Kv.ModRevision + 1
		}
	}
	return established
}

func (w *watch) event(ev *clientv3.Event) meta.Event {
	key := ev.Kv.Key[len(w.s.prefix):]
	if ev.Type == mvccpb.DELETE {
		// The deleted record's version, as the embedded store reports it.
		var version int64
		if ev.PrevKv != nil {
			version = ev.PrevKv.Version
		}
		return meta.Event{Type: meta.EventDelete, KV: meta.KV{Key: string(key), Version: version}, Revision: ev.Kv.ModRevision}
	}
	return meta.Event{Type: meta.EventPut, KV: meta.KV{Key: string(key), Value: ev.Kv.Value, Version: ev.Kv.Version}, Revision: ev.Kv.ModRevision}
}

// send delivers ev, blocking (slow receivers lose nothing) until ctx ends.
func (w *watch) send(ctx context.Context, ev meta.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
