package access

import (
	"testing"
	"time"
)

func TestAuditLimiterPerSourceBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuditLimiter(2, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, d := l.allow("10.0.0.1"); !ok || d != 0 {
			t.Fatalf("record %d of the burst: ok=%v dropped=%d", i, ok, d)
		}
	}
	for range 4 {
		if ok, _ := l.allow("10.0.0.1"); ok {
			t.Fatal("a record beyond the burst was allowed")
		}
	}
	// Another source has its own bucket.
	if ok, _ := l.allow("10.0.0.2"); !ok {
		t.Fatal("another source was limited")
	}
	// Half a second later one record is allowed again, and it brings the
	// count of those dropped meanwhile.
	now = now.Add(500 * time.Millisecond)
	if ok, d := l.allow("10.0.0.1"); !ok || d != 4 {
		t.Fatalf("after refill: ok=%v dropped=%d, want true 4", ok, d)
	}
	l.allow("10.0.0.1") // dropped again
	if got := l.flush(); got["10.0.0.1"] != 1 || len(got) != 1 {
		t.Fatalf("flush: %v", got)
	}
	if got := l.flush(); len(got) != 0 {
		t.Fatalf("second flush: %v", got)
	}
	// Idle sources with full buckets are forgotten.
	now = now.Add(time.Minute)
	l.flush()
	if len(l.sources) != 0 {
		t.Fatalf("sources kept: %v", l.sources)
	}
}

func TestAuditLimiterBoundsSources(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuditLimiter(1, 1, func() time.Time { return now })
	for i := range maxAuditSources + 50 {
		l.allow(time.Duration(i).String())
	}
	if len(l.sources) > maxAuditSources+1 { // plus the shared bucket
		t.Fatalf("%d sources kept, bound %d", len(l.sources), maxAuditSources)
	}
	if l.sources[overflowSource] == nil {
		t.Fatal("no overflow bucket")
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5555": "127.0.0.1", "[::1]:80": "::1", "[::ffff:10.1.2.3]:9": "10.1.2.3", "": "unknown", "pipe": "pipe",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
