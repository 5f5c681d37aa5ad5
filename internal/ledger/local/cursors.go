package local

import (
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
)

// Cursor states are kept encoded in memory (ledgerState.cursors) and written
// to the index by one synced batch per CursorFlushInterval holding every
// cursor saved since the last one, plus the moved trim points and the
// ledgers' high-water marks (an id above every entry published: recovery
// never hands out again an id below it, even when damage took the entries
// from the journal); also on ledger Close, Store Close and before segments
// are deleted.

// Cursors implements ledger.Ledger; the states returned are the caller's.
func (h *handle) Cursors() map[string]*ledger.CursorState {
	l := h.l
	l.mu.Lock()
	encoded := make(map[string][]byte, len(l.cursors))
	for name, b := range l.cursors { // never modified in place: safe to decode unlocked
		encoded[name] = b
	}
	l.mu.Unlock()
	out := make(map[string]*ledger.CursorState, len(encoded))
	for name, b := range encoded {
		c := new(ledger.CursorState)
		if err := c.UnmarshalBinary(b); err != nil {
			l.s.log.Error("unreadable cursor state ignored", "ledger", l.name, "cursor", name, "err", err)
			continue
		}
		out[name] = c
	}
	return out
}

// SaveCursor implements ledger.Ledger.
func (h *handle) SaveCursor(name string, state *ledger.CursorState) error {
	if h.closed.Load() {
		return ledger.ErrClosed
	}
	b, err := state.MarshalBinary()
	if err != nil {
		return err
	}
	l := h.l
	l.mu.Lock()
	if l.deleted {
		l.mu.Unlock()
		return ledger.ErrClosed
	}
	l.cursors[name] = b
	l.dirty[name] = struct{}{}
	l.s.markDirty(l)
	l.mu.Unlock()
	return nil
}

// DeleteCursor implements ledger.Ledger; the deletion is synced before it
// returns.
func (h *handle) DeleteCursor(name string) error {
	if h.closed.Load() {
		return ledger.ErrClosed
	}
	l := h.l
	l.s.flushMu.Lock()
	defer l.s.flushMu.Unlock()
	l.mu.Lock()
	if l.deleted {
		l.mu.Unlock()
		return ledger.ErrClosed
	}
	delete(l.cursors, name)
	delete(l.dirty, name)
	l.mu.Unlock()
	if err := l.s.reg.deleteCursor(l.id, name); err != nil {
		return fmt.Errorf("ledger/local: %s: %w", l.name, err)
	}
	return nil
}

// pruneRefused returns how many of the ranges rs end at or below first.
func pruneRefused(rs []idRange, first int64) int {
	i := 0
	for i < len(rs) && rs[i].to <= first {
		i++
	}
	return i
}

func (s *Store) markDirty(l *ledgerState) {
	s.dirtyMu.Lock()
	s.dirtySet[l] = struct{}{}
	s.dirtyMu.Unlock()
}

func (s *Store) flushLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.CursorFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.flush(); err != nil {
				if ok, n := s.flushLog.Allow(); ok {
					s.log.Error("cursor flush failed; will retry", "err", err, "suppressed", n)
				}
			}
		case <-s.stopBg:
			return
		}
	}
}

// flush writes every dirty cursor and trim point in one synced batch. On
// failure they stay dirty for the next attempt.
func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.dirtyMu.Lock()
	set := s.dirtySet
	if len(set) == 0 {
		s.dirtyMu.Unlock()
		return nil
	}
	s.dirtySet = make(map[*ledgerState]struct{})
	s.dirtyMu.Unlock()

	type written struct {
		l     *ledgerState
		names []string
		trim  bool
		next  int64 // high-water mark written, 0 if none
		// refused ids written
		refused bool
	}
	var done []written
	b := s.reg.newBatch()
	for l := range set {
		l.mu.Lock()
		if !l.deleted {
			w := written{l: l, trim: l.trimDirty}
			for name := range l.dirty {
				b.cursor(l.id, name, l.cursors[name])
				w.names = append(w.names, name)
			}
			if l.trimDirty {
				b.trim(l.id, l.first)
			}
			if next := l.last + 1; next > l.savedNext {
				b.next(l.id, next)
				w.next = next
			}
			if i := pruneRefused(l.refused, l.first); i > 0 {
				l.refused = append(l.refused[:0], l.refused[i:]...)
				l.refusedDirty = true
			}
			if l.refusedDirty {
				b.refused(l.id, l.refused)
				w.refused, l.refusedDirty = true, false
			}
			clear(l.dirty)
			l.trimDirty, l.nextDirty = false, false
			done = append(done, w)
		}
		l.mu.Unlock()
	}
	if err := b.commit(); err != nil {
		for _, w := range done {
			w.l.mu.Lock()
			if !w.l.deleted {
				for _, name := range w.names {
					if _, ok := w.l.cursors[name]; ok {
						w.l.dirty[name] = struct{}{}
					}
				}
				w.l.trimDirty = w.l.trimDirty || w.trim
				w.l.refusedDirty = w.l.refusedDirty || w.refused
			}
			w.l.mu.Unlock()
			s.markDirty(w.l)
		}
		return fmt.Errorf("ledger/local: write cursors: %w", err)
	}
	for _, w := range done {
		if w.next > 0 {
			w.l.mu.Lock()
			w.l.savedNext = max(w.l.savedNext, w.next)
			w.l.mu.Unlock()
		}
	}
	if s.opts.onFlush != nil && len(done) > 0 {
		s.opts.onFlush()
	}
	return nil
}

// SyncCursors implements ledger.CursorSyncer: one synced batch of every
// dirty cursor of the store.
func (h *handle) SyncCursors() error {
	if h.closed.Load() {
		return ledger.ErrClosed
	}
	return h.l.s.flush()
}
