package test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

type geoOrder struct {
	ID  string `avro:"id"`
	Qty int    `avro:"qty"`
}

type geoOrderNote struct {
	ID   string  `avro:"id"`
	Qty  int     `avro:"qty"`
	Note *string `avro:"note"`
}

// A topic with a schema replicates its schema: the replicator registers the
// source's schema on the remote (as a producer with it would) and rewrites
// each message's schema_version to the remote's version of it. b already has
// another version of the schema, so its version numbers differ from a's:
// consumers with a's schema decode a's messages on both sides, and each
// names, on b, the version b stores for a's schema; b's message reaches a
// with a's version of b's schema (whichever a gave it).
func TestGeoReplicationSchema(t *testing.T) {
	a, b := startGeoServer(t, "a"), startGeoServer(t, "b")
	geoLink(t, "public/geo", "", a, b)
	topic := "persistent://public/geo/orders"
	defA := `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}`
	defB := `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"},{"name":"note","type":["null","string"],"default":null}]}`

	// b's version 0 is defB (written by a local producer there).
	cb := newClient(t, b.brokerURL)
	defer cb.Close()
	pb, err := cb.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(defB, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	note := "from b"
	if _, err := pb.Send(context.Background(), &pulsar.ProducerMessage{Key: "b", Value: &geoOrderNote{ID: "b-0", Qty: 1, Note: &note}}); err != nil {
		t.Fatal(err)
	}
	ca := newClient(t, a.brokerURL)
	defer ca.Close()
	pa, err := ca.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(defA, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	for i := 0; i < 20; i++ {
		if _, err := pa.Send(context.Background(), &pulsar.ProducerMessage{Key: "a", Value: &geoOrder{ID: fmt.Sprint("a-", i), Qty: i}}); err != nil {
			t.Fatal(err)
		}
	}

	// Each side holds the other's schema as a version of its own, with its
	// definition; b's version of a's schema is not 0 (b had defB first).
	versionOf := func(webURL, def string) int64 {
		t.Helper()
		v := int64(-1)
		adminEventually(t, "schema registered on "+webURL, func() bool {
			code, body := httpDo(t, "GET", webURL+"/admin/v2/schemas/public/geo/orders/schemas", "")
			if code != http.StatusOK {
				return false
			}
			var all struct {
				GetSchemaResponses []struct {
					Version int64  `json:"version"`
					Data    string `json:"data"`
				} `json:"getSchemaResponses"`
			}
			decodeJSON(t, body, &all)
			for _, s := range all.GetSchemaResponses {
				if sameJSON(s.Data, def) {
					v = s.Version
					return true
				}
			}
			return false
		})
		return v
	}
	bVersion := versionOf(b.webURL, defA)
	aVersionOfB := versionOf(a.webURL, defB)
	if bVersion == 0 {
		t.Fatalf("a's schema is b's version 0, the test needs them to differ")
	}

	consume := func(url string, want int) map[string][]geoOrder {
		t.Helper()
		c := newClient(t, url)
		defer c.Close()
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Schema: pulsar.NewAvroSchema(defA, nil),
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		got := map[string][]geoOrder{}
		for n := 0; n < want; n++ {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			m, err := cons.Receive(ctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: received %d of %d: %v", url, n, want, err)
			}
			var o geoOrder
			if m.Key() == "a" {
				if err := m.GetSchemaValue(&o); err != nil {
					t.Fatalf("%s: decode %q: %v", url, m.Payload(), err)
				}
			} else {
				o.ID = "b-0" // written with b's schema, which this consumer's is not
			}
			v := m.SchemaVersion()
			if len(v) != 8 {
				t.Fatalf("%s: message without a schema version: %x", url, v)
			}
			switch n := int64(binary.BigEndian.Uint64(v)); {
			case m.GetReplicatedFrom() == "a" && n != bVersion:
				t.Fatalf("replicated message on b has schema version %d, want %d", n, bVersion)
			case m.GetReplicatedFrom() == "b" && n != aVersionOfB:
				t.Fatalf("replicated message on a has schema version %d, want %d (a's version of b's schema)", n, aVersionOfB)
			}
			got[m.Key()] = append(got[m.Key()], o)
			cons.Ack(m)
		}
		return got
	}
	onB := consume(b.brokerURL, 21)
	onA := consume(a.brokerURL, 21)
	for where, got := range map[string]map[string][]geoOrder{"a": onA, "b": onB} {
		if len(got["a"]) != 20 || len(got["b"]) != 1 || got["b"][0].ID != "b-0" {
			t.Fatalf("%s: %+v", where, got)
		}
		for i, o := range got["a"] {
			if o.ID != fmt.Sprint("a-", i) || o.Qty != i {
				t.Fatalf("%s: message %d is %+v", where, i, o)
			}
		}
	}
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(x, y string) bool {
	var a, b any
	if json.Unmarshal([]byte(x), &a) != nil || json.Unmarshal([]byte(y), &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
