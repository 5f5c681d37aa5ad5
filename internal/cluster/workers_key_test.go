package cluster

import (
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/supervise"
)

// FuzzClaimKey: a claim key names its unit back, and any key under the
// claims prefix parses to a unit or is refused, never a panic.
func FuzzClaimKey(f *testing.F) {
	for _, s := range []string{"t/ns/f", "a/b/c/d", "", "/", "x/"} {
		f.Add("function", s, 3, "function/t/ns/f/0")
	}
	f.Fuzz(func(t *testing.T, kind, name string, id int, raw string) {
		w := &Workers{m: &Manager{o: Options{Prefix: "/p/"}}}
		w.parseClaimKey(w.claimsPrefix() + raw)
		if kind == "" || strings.Contains(kind, "/") || name == "" || id < 0 {
			return
		}
		u := supervise.Unit{Kind: kind, Name: name, ID: id}
		got, ok := w.parseClaimKey(w.claimKey(u))
		if !ok || got != u {
			t.Fatalf("claim key of %+v parsed as %+v, %v", u, got, ok)
		}
	})
}
