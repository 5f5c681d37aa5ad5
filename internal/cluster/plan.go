package cluster

import (
	"hash/fnv"
	"slices"

	"github.com/messagebus/messagebus/internal/supervise"
)

// Plan places function and connector instances on workers: every broker
// computes it from the same view (the wanted units, the live workers by
// kind, the current holders) and acts on its own part only, so they agree
// without talking to each other.
//
// Per kind, n units over w workers: each worker gets n/w units, and n%w
// of them one more (least instances first). A unit stays with its live
// holder while the holder is within that bound (no churn when a function
// is created or a broker leaves); the units beyond it, and the free ones,
// go to the first worker with room in the unit's rendezvous order (hash of
// worker and unit, highest first), so a unit's place depends little on
// the others. When a broker joins, the bound falls and the holders above
// it give up their last units (in name order), which the new broker takes.
func Plan(units []supervise.Unit, workers map[string][]string, held map[supervise.Unit]string) map[supervise.Unit]string {
	byKind := map[string][]supervise.Unit{}
	for _, u := range units {
		byKind[u.Kind] = append(byKind[u.Kind], u)
	}
	out := make(map[supervise.Unit]string, len(units))
	for kind, us := range byKind {
		ws := slices.Clone(workers[kind])
		slices.Sort(ws)
		ws = slices.Compact(ws)
		if len(ws) == 0 {
			continue
		}
		slices.SortFunc(us, func(a, b supervise.Unit) int {
			if a.Name != b.Name {
				if a.Name < b.Name {
					return -1
				}
				return 1
			}
			return a.ID - b.ID
		})
		base, extra := len(us)/len(ws), len(us)%len(ws)
		count := make(map[string]int, len(ws))
		live := make(map[string]bool, len(ws))
		for _, w := range ws {
			live[w] = true
		}
		// room reports whether w can take one more unit, taking an extra
		// slot when it goes above base.
		room := func(w string) bool {
			switch {
			case count[w] < base:
			case count[w] == base && extra > 0:
				extra--
			default:
				return false
			}
			count[w]++
			return true
		}
		for _, u := range us {
			if h, ok := held[u]; ok && live[h] && room(h) {
				out[u] = h
			}
		}
		for _, u := range us {
			if _, ok := out[u]; ok {
				continue
			}
			for _, w := range rendezvous(u, ws) {
				if room(w) {
					out[u] = w
					break
				}
			}
		}
	}
	return out
}

// rendezvous orders workers by the hash of (worker, unit), highest first.
func rendezvous(u supervise.Unit, ws []string) []string {
	type scored struct {
		w     string
		score uint64
	}
	key := u.String()
	sc := make([]scored, len(ws))
	for i, w := range ws {
		h := fnv.New64a()
		h.Write([]byte(w))
		h.Write([]byte{0})
		h.Write([]byte(key))
		sc[i] = scored{w, h.Sum64()}
	}
	slices.SortFunc(sc, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		if a.w < b.w {
			return -1
		}
		return 1
	})
	out := make([]string, len(sc))
	for i, s := range sc {
		out[i] = s.w
	}
	return out
}
