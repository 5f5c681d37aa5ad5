package tiered

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Deleting objects from the store. Objects are only deleted once no
// manifest serves them: retention moved their entries to the manifest's
// Deleting list (durably, before anything is deleted), an offload found its
// object trimmed before listing it, the topic was deleted, or nothing
// lists them (orphans). A read in progress holds its object (holds);
// deletion waits for it, so a reader that started before a deletion
// finishes its read, and a reader arriving after it finds the object no
// longer served and moves on (Read re-reads the manifest).

// errGone: the object is being deleted; the reader re-reads the manifest.
var errGone = errors.New("tiered: object deleted")

// holds counts the reads in progress per object key.
type holds struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     map[string]int
	dying map[string]bool // being deleted: no new holds
}

func newHolds() *holds {
	h := &holds{n: map[string]int{}, dying: map[string]bool{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// hold takes a hold on key, unless the key is being deleted.
func (h *holds) hold(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dying[key] {
		return false
	}
	h.n[key]++
	return true
}

func (h *holds) release(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n[key]--; h.n[key] <= 0 {
		delete(h.n, key)
		h.cond.Broadcast()
	}
}

// drain marks key as being deleted and waits until no read holds it.
// Reads hold an object for at most one object-store call (OpTimeout).
func (h *holds) drain(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dying[key] = true
	for h.n[key] > 0 {
		h.cond.Wait()
	}
}

// done ends the deletion of key.
func (h *holds) done(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.dying, key)
}

// deleteObject deletes key from the store once no read holds it.
func (s *Store) deleteObject(ctx context.Context, key string) error {
	s.holds.drain(key)
	defer s.holds.done(key)
	s.cache.Forget(key)
	ctx, cancel := context.WithTimeout(ctx, s.o.OpTimeout)
	defer cancel()
	if err := s.o.Objects.Delete(ctx, key); err != nil {
		s.o.Metrics.deleteErrors.Inc()
		return err
	}
	s.o.Metrics.deletedObjects.Inc()
	return nil
}

// deleteObjects deletes objects no manifest lists any more, in the
// background (one that fails stays as an orphan).
func (s *Store) deleteObjects(objs []objectEntry) {
	s.spawn(func() {
		for _, o := range objs {
			if err := s.deleteObject(s.ctx, o.Key); err != nil {
				s.log.Warn("delete offloaded object; it stays as an orphan", "key", o.Key, "err", err)
			}
		}
	})
}

// deletionLag is the lag in force for the ledger, in ms.
func (l *Ledger) deletionLagMs() int64 {
	if l.lag != nil {
		return l.lag.Milliseconds()
	}
	return max(0, l.s.o.DeletionLag.Milliseconds())
}

// dueDeletions returns the objects of the Deleting list whose lag has
// passed and are not being deleted, marking them so, and how long until the
// next one is due (-1: none). l.mu is held.
func (l *Ledger) dueDeletions(now, lag int64) ([]objectEntry, int64) {
	var due []objectEntry
	wait := int64(-1)
	for _, o := range l.man.Deleting {
		if l.deleting[o.Key] {
			continue
		}
		if at := o.TrimmedAtMs + lag; at <= now {
			due = append(due, o)
			l.deleting[o.Key] = true
		} else if wait < 0 || at-now < wait {
			wait = at - now
		}
	}
	return due, wait
}

// deleteTrimmed deletes objects of the Deleting list from the store, then
// drops them from the manifest. A failure leaves them listed: they are
// tried again at the next trim, lag change or open.
func (l *Ledger) deleteTrimmed(objs []objectEntry) {
	var deleted []string
	for _, o := range objs {
		if err := l.s.deleteObject(l.s.ctx, o.Key); err != nil {
			l.s.log.Warn("delete trimmed offloaded object; retried later", "ledger", l.Name(), "key", o.Key, "err", err)
			continue
		}
		deleted = append(deleted, o.Key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range objs {
		delete(l.deleting, o.Key)
	}
	if len(deleted) == 0 {
		return
	}
	next := *l.man
	next.Deleting = nil
	for _, o := range l.man.Deleting {
		if !contains(deleted, o.Key) {
			next.Deleting = append(next.Deleting, o)
		}
	}
	if err := next.save(l.s.o.Dir); err != nil {
		// The objects are gone; listed again after a restart, their
		// deletion is repeated (deleting a missing key succeeds).
		l.s.log.Error("trimmed objects deleted; manifest not saved", "ledger", l.Name(), "err", err)
		return
	}
	l.man = &next
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// collectOrphansAtOpen deletes, in the background, the ledger's objects no
// manifest entry lists, left by an offload interrupted between its PUT and
// its manifest write. Only ledgers with a manifest file can have any: an
// offload writes the file before its first PUT.
func (l *Ledger) collectOrphansAtOpen() {
	if !l.man.onDisk {
		return
	}
	l.s.spawn(func() {
		l.offloadMu.Lock() // no offload writes objects meanwhile
		defer l.offloadMu.Unlock()
		if l.s.ctx.Err() != nil {
			return
		}
		l.collectOrphans(l.s.ctx)
	})
}

// timerAfter is time.AfterFunc for a wait in ms.
func timerAfter(ms int64, fn func()) *time.Timer {
	return time.AfterFunc(time.Duration(ms)*time.Millisecond, fn)
}
