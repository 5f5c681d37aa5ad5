package replication

import (
	"strings"
	"testing"
)

func FuzzCredentials(f *testing.F) {
	for _, s := range []string{"token:abc", "file:/nonexistent", `{"token":"x"}`, `{"token":`, "abc", "", "  token:  "} {
		f.Add("token", s)
		f.Add("", s)
	}
	f.Add("org.apache.pulsar.client.impl.auth.AuthenticationTls", "tlsCertFile:a")
	f.Add("org.apache.pulsar.client.impl.auth.AuthenticationTls", "tlsCertFile:a,tlsKeyFile:b")
	f.Add("basic", `{"userId":"u","password":"p"}`)
	f.Add("org.apache.pulsar.client.impl.auth.AuthenticationBasic", `{"userId":"u:x"}`)
	f.Fuzz(func(t *testing.T, plugin, params string) {
		c, err := credentials(plugin, params)
		if err != nil {
			return
		}
		method, data := c.method, c.data
		if method == "" && (len(data) != 0 || strings.TrimSpace(params) != "") {
			t.Fatalf("(%q, %q): no method but data %q", plugin, params, data)
		}
		if method == "token" && len(data) == 0 {
			t.Fatalf("(%q, %q): empty token", plugin, params)
		}
		if method == "tls" && (c.certFile == "" || c.keyFile == "") {
			t.Fatalf("(%q, %q): TLS without files", plugin, params)
		}
		if (method == "") != (c.httpAuth == "" && method != "tls") {
			t.Fatalf("(%q, %q): method %q with HTTP auth %q", plugin, params, method, c.httpAuth)
		}
	})
}
