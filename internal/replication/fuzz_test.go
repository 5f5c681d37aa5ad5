package replication

import (
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
		if back := strconv.FormatInt(l, 10) + ":" + strconv.FormatInt(e, 10); back != s {
			if l2, e2, err := ParseSourcePosition(back); err != nil || l2 != l || e2 != e {
				t.Fatalf("%q -> %q does not round-trip", s, back)
			}
		}
	})
}

func FuzzCredentials(f *testing.F) {
	for _, s := range []string{"token:abc", "file:/nonexistent", `{"token":"x"}`, `{"token":`, "abc", "", "  token:  "} {
		f.Add("token", s)
		f.Add("", s)
	}
	f.Add("org.apache.pulsar.client.impl.auth.AuthenticationTls", "tlsCertFile:a")
	f.Fuzz(func(t *testing.T, plugin, params string) {
		method, data, err := credentials(plugin, params)
		if err != nil {
			return
		}
		if method == "" && (len(data) != 0 || params != "") {
			t.Fatalf("(%q, %q): no method but data %q", plugin, params, data)
		}
		if method == "token" && len(data) == 0 {
			t.Fatalf("(%q, %q): empty token", plugin, params)
		}
	})
}
