package replication

import "testing"

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
