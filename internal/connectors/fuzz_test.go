package connectors

import (
	"encoding/json"
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
