package connectors

import (
	"fmt"
	"strings"
)

// The helpers below check a connector's settings in its Check method:
// each fills a default for the zero value and names the key in its error.

// Required refuses an empty value.
func Required(v, key string) error {
	if v == "" {
		return fmt.Errorf("%s is required", key)
	}
	return nil
}

// IntRange sets *v to def when zero and refuses values outside [lo, hi].
func IntRange[T int | int32 | int64](v *T, key string, def, lo, hi T) error {
	if *v == 0 {
		*v = def
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%s: %d to %d", key, lo, hi)
	}
	return nil
}

// IntMin sets *v to def when zero and refuses values below lo.
func IntMin[T int | int32 | int64](v *T, key string, def, lo T) error {
	if *v == 0 {
		*v = def
	}
	if *v < lo {
		return fmt.Errorf("%s: at least %d", key, lo)
	}
	return nil
}

// Choice sets *v to the first choice when empty and refuses values not
// among the choices.
func Choice(v *string, key string, choices ...string) error {
	if *v == "" {
		*v = choices[0]
	}
	for _, c := range choices {
		if *v == c {
			return nil
		}
	}
	return fmt.Errorf("%s %q: %s", key, *v, orList(choices))
}

func orList(l []string) string {
	if len(l) == 1 {
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}
