package metafault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

func openEmbedded(t *testing.T) *meta.Embedded {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return md
}

func TestRulesDelayFailAndCount(t *testing.T) {
	f := ForTest(t, openEmbedded(t))
	ctx := context.Background()
	ns := naming.Namespace{Tenant: "a", Name: "b"}
	key := meta.NamespacePoliciesPrefix + ns.String()
	other := meta.NamespacePoliciesPrefix + "a/bc" // shares a prefix, not the namespace
	for _, k := range []string{key, other} {
		if _, err := f.Put(ctx, k, []byte("{}"), meta.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	remove := f.Inject(Rule{Match: Namespace(ns), Ops: []Op{OpGet}, Fail: true})
	if _, err := f.Get(ctx, key); !errors.Is(err, ErrInjected) {
		t.Fatalf("get of a failing key: %v", err)
	}
	if _, err := f.Get(ctx, other); err != nil {
		t.Fatalf("get of another namespace: %v", err)
	}
	remove()
	if _, err := f.Get(ctx, key); err != nil {
		t.Fatalf("get after the rule was removed: %v", err)
	}
	if n := f.Calls(OpGet, key); n != 2 {
		t.Fatalf("%d gets counted, want 2", n)
	}

	f.Inject(Rule{Match: Prefix("/admin/"), Delay: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := f.List(cctx, "/admin/"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a delayed call ends with its context: %v", err)
	}
	f.Heal()
	if _, err := f.List(ctx, "/admin/"); err != nil {
		t.Fatal(err)
	}
}

// TestSeedReplaysFaults: the same seed fails the same calls.
func TestSeedReplaysFaults(t *testing.T) {
	run := func(seed uint64) []string {
		f := Wrap(openEmbedded(t), seed)
		f.Inject(Rule{Match: Any(), Fail: true, Probability: 0.5})
		var failed []string
		for i := range 50 {
			k := "/k/" + string(rune('a'+i%26))
			if _, err := f.Put(context.Background(), k, []byte("v"), meta.AnyVersion); err != nil {
				failed = append(failed, k)
			}
		}
		return failed
	}
	a, b := run(42), run(42)
	if len(a) == 0 || len(a) == 50 || len(a) != len(b) {
		t.Fatalf("seed 42 failed %d then %d of 50 calls", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("replay differs at %d: %s vs %s", i, a[i], b[i])
		}
	}
}
