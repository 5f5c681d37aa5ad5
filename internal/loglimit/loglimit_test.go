package loglimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(10 * time.Second)
	t0 := time.Unix(1000, 0)
	if ok, n := l.allowAt(t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.allowAt(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatalf("line %d within the interval allowed", i)
		}
	}
	if ok, n := l.allowAt(t0.Add(10 * time.Second)); !ok || n != 5 {
		t.Fatalf("line after the interval: %v, %d suppressed; want true, 5", ok, n)
	}
	if ok, _ := l.allowAt(t0.Add(11 * time.Second)); ok {
		t.Fatal("interval not restarted")
	}
	var zero Limiter
	for range 3 {
		if ok, n := zero.Allow(); !ok || n != 0 {
			t.Fatal("the zero Limiter suppressed a line")
		}
	}
}
