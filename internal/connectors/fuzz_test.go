package connectors

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzConnectorConfig feeds arbitrary JSON configs to both kinds' checks:
// they must answer an error or a config that passes again, never panic.
func FuzzConnectorConfig(f *testing.F) {
	f.Add([]byte(`{"tenant":"public","namespace":"default","name":"x","archive":"builtin://data-generator","topicName":"t","configs":{"count":3}}`))
	f.Add([]byte(`{"tenant":"public","namespace":"default","name":"x","archive":"builtin://file","inputs":["t"],"configs":{"path":"/tmp/x"}}`))
	f.Add([]byte(`{"tenant":"public","namespace":"default","name":"x","archive":"builtin://postgres","configs":{"connectionString":"postgres://u@h/db","tables":["a.b"],"outbox":{"table":"a.o","routeColumn":"r","payloadColumn":"p","topicPattern":"{route}"}}}`))
	f.Add([]byte(`{"tenant":"public","namespace":"default","name":"x","archive":"builtin://sqs","inputs":["t"],"secrets":{"accessKeyId":"env:K"},"configs":{"queueUrl":"http://q"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []Kind{KindSource, KindSink} {
			var c Config
			if json.Unmarshal(b, &c) != nil {
				return
			}
			if err := c.normalize(kind); err != nil {
				continue
			}
			again := c
			if err := again.normalize(kind); err != nil {
				t.Fatalf("a normalized %s config fails again: %v", kind, err)
			}
		}
	})
}

// FuzzSecretReference: a reference is refused or names a path that Vault
// addressing accepts and that parses again to the same path and field.
func FuzzSecretReference(f *testing.F) {
	for _, s := range []string{"vault:teams/shop/pg#password", "vault:/a//b#f", "env:X", "file:/p", "vault:a/../b#f", "vault:a#b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if checkRef(ref) != nil || !strings.HasPrefix(ref, "vault:") {
			return
		}
		path, field, err := parseVaultRef(ref)
		if err != nil || path == "" || field == "" || strings.Contains(path, "#") {
			t.Fatalf("%q: path %q field %q err %v", ref, path, field, err)
		}
		p2, f2, err := parseVaultRef("vault:" + path + "#" + field)
		if err != nil || p2 != path || f2 != field {
			t.Fatalf("%q does not parse again: %q %q %v", ref, p2, f2, err)
		}
	})
}
