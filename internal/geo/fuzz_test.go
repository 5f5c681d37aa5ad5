package geo

import (
	"net"
	"strconv"
	"testing"
)

func FuzzParseSourcePosition(f *testing.F) {
	for _, s := range []string{"1:2", "0:0", "-1:3", "1:", ":1", "a:b", "1:2:3", "9223372036854775807:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, e, err := ParseSourcePosition(s)
		if err != nil {
			return
		}
		if l < 0 || e < 0 {
			t.Fatalf("%q: negative position %d:%d", s, l, e)
		}
		// What parses is what the replicator writes, modulo leading zeros and signs.
		if back := FormatSourcePosition(l, e); back != s {
			if l2, e2, err := ParseSourcePosition(back); err != nil || l2 != l || e2 != e {
				t.Fatalf("%q -> %q does not round-trip", s, back)
			}
		}
		if string(AppendSourcePosition(nil, l, e)) != FormatSourcePosition(l, e) {
			t.Fatalf("%q: Append and Format differ", s)
		}
	})
}

func TestParseSourcePosition(t *testing.T) {
	for _, bad := range []string{"", "1", "1:", ":1", "a:1", "-1:0", "1:-2", "1:2:3"} {
		if _, _, err := ParseSourcePosition(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if l, e, err := ParseSourcePosition(strconv.Itoa(7) + ":9"); err != nil || l != 7 || e != 9 {
		t.Fatalf("7:9 -> %d %d %v", l, e, err)
	}
}

func FuzzSplitServiceURL(f *testing.F) {
	for _, s := range []string{"pulsar://h:6650", "pulsar://h1:1,h2", "http://[::1]:8080,h/x", "pulsar://", "pulsar://a,,b", "::", "x://a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scheme, hosts, err := SplitServiceURL(s, map[string]string{"pulsar": "6650"})
		if err != nil {
			return
		}
		if scheme == "" || len(hosts) == 0 {
			t.Fatalf("%q: scheme %q hosts %v without an error", s, scheme, hosts)
		}
		for _, h := range hosts {
			if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" {
				t.Fatalf("%q: host %q is not host:port", s, h)
			}
		}
	})
}
