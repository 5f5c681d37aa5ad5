package pace

import (
	"errors"
	"testing"
)

func TestIdleIORunsFnAndReturnsItsError(t *testing.T) {
	ran := false
	want := errors.New("read failed")
	if err := IdleIO(func() error { ran = true; return want }); !errors.Is(err, want) || !ran {
		t.Fatalf("IdleIO: ran %v, err %v; want ran and %v", ran, err, want)
	}
	ran = false
	if err := With(false)(func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("With(false): ran %v, err %v", ran, err)
	}
}
