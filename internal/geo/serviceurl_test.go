package geo

import (
	"slices"
	"testing"
)

func TestSplitServiceURL(t *testing.T) {
	ports := map[string]string{"pulsar": "6650", "http": "8080"}
	for _, c := range []struct {
		in     string
		scheme string
		hosts  []string
	}{
		{"pulsar://a:1", "pulsar", []string{"a:1"}},
		{"pulsar://a:1,b,[::1]:3", "pulsar", []string{"a:1", "b:6650", "[::1]:3"}},
		{"http://a,b:81/admin", "http", []string{"a:8080", "b:81"}},
	} {
		s, h, err := SplitServiceURL(c.in, ports)
		if err != nil || s != c.scheme || !slices.Equal(h, c.hosts) {
			t.Errorf("%q: %q %v %v", c.in, s, h, err)
		}
	}
	for _, bad := range []string{"a:1", "pulsar://", "pulsar://a,,b", "pulsar://:1", "pulsar+ssl://a", "pulsar://u@a:1", "pulsar://::1"} {
		if _, _, err := SplitServiceURL(bad, ports); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
