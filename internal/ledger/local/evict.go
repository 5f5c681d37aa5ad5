package local

import (
	"cmp"
	"slices"
)

// Each ledger's cache has its own budget (CacheBytes); all of them together
// are kept within CacheTotalBytes by the evictor goroutine, so memory stays
// bounded with any number of topics. An append that takes the total over the
// budget kicks the evictor, which shrinks the caches of the ledgers appended
// to least recently (idle topics first) until the total is 10% under the
// budget. Eviction runs beside the write path, never on it: the total may
// overshoot by what is appended meanwhile.

// CacheBytes reports the bytes held by all ledgers' caches.
func (s *Store) CacheBytes() int64 { return s.cacheTotal.Load() }

func (s *Store) kickEvictor() { kick(s.evictorKick) }

func (s *Store) evict() {
	s.shrinkCaches()
	if s.opts.onEvict != nil {
		s.opts.onEvict()
	}
}

// shrinkCaches brings the caches' total 10% under the budget, least
// recently appended ledgers first.
func (s *Store) shrinkCaches() {
	target := s.opts.CacheTotalBytes - s.opts.CacheTotalBytes/10
	if s.cacheTotal.Load() <= target {
		return
	}
	type candidate struct {
		l       *ledgerState
		lastAdd int64
	}
	var cs []candidate
	for _, l := range s.snapshot() {
		l.mu.Lock()
		if l.cache.bytes > 0 {
			cs = append(cs, candidate{l, l.cache.lastAdd})
		}
		l.mu.Unlock()
	}
	slices.SortFunc(cs, func(a, b candidate) int { return cmp.Compare(a.lastAdd, b.lastAdd) })
	for _, c := range cs {
		c.l.mu.Lock()
		for c.l.cache.len() > 0 && s.cacheTotal.Load() > target {
			c.l.cache.dropFront()
		}
		c.l.mu.Unlock()
		if s.cacheTotal.Load() <= target {
			return
		}
	}
}
