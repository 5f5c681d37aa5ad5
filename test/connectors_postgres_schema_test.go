package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/testutil/pgtest"
	"github.com/messagebus/messagebus/server"
)

// The postgres source with valueSchema json: each table topic's envelope
// schema is in the registry, a new version once the table's columns
// change, and the official client reads the envelopes with it.
func TestPostgresCDCSchemaRegistry(t *testing.T) {
	pg := pgtest.Start(t)
	db := pgConnect(t, pg.DSN("postgres"))
	pgExec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text, ok boolean)`)
	pgExec(t, db, `INSERT INTO items VALUES (1, 'one', true)`)
	s := startServer(t, server.Options{})
	cfg := fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"tables":["public.items"],"valueSchema":"json"}}`, pg.DSN("postgres"))
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/pgs", cfg); code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	const topic = "persistent://public/default/postgres.public.items"
	schemaURL := s.WebURL() + "/admin/v2/schemas/public/default/postgres.public.items/schema"
	type registered struct {
		Version int64  `json:"version"`
		Type    string `json:"type"`
		Data    string `json:"data"`
	}
	var v0 registered
	waitFor(t, "the envelope schema in the registry", 20*time.Second, func() bool {
		code, body := httpGet(t, schemaURL)
		return code == http.StatusOK && json.Unmarshal([]byte(body), &v0) == nil
	})
	if v0.Type != "JSON" || rowFields(t, v0.Data) == nil || !slices.Equal(rowFields(t, v0.Data), []string{"id", "name", "ok"}) {
		t.Fatalf("registered schema: %+v", v0)
	}

	c := newClient(t, s.BrokerURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "with-schema",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, Schema: pulsar.NewJSONSchema(v0.Data, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	type row struct {
		ID    int      `json:"id"`
		Name  string   `json:"name"`
		OK    *bool    `json:"ok"`
		Price *float64 `json:"price"`
	}
	type envelope struct {
		Before *row   `json:"before"`
		After  *row   `json:"after"`
		Op     string `json:"op"`
		Source struct {
			Table string `json:"table"`
		} `json:"source"`
	}
	read := func() (envelope, pulsar.Message) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cons.Ack(m)
		var e envelope
		if err := m.GetSchemaValue(&e); err != nil {
			t.Fatalf("decode with the schema: %v", err)
		}
		return e, m
	}
	e, m1 := read()
	if e.Op != "r" || e.After == nil || e.After.ID != 1 || e.After.Name != "one" || e.After.OK == nil || !*e.After.OK || e.Source.Table != "items" {
		t.Fatalf("snapshot row: %+v", e)
	}
	pgExec(t, db, `INSERT INTO items VALUES (2, 'two', NULL)`)
	e, m2 := read()
	if e.Op != "c" || e.After.ID != 2 || e.After.OK != nil || !slices.Equal(m2.SchemaVersion(), m1.SchemaVersion()) {
		t.Fatalf("insert: %+v, schema versions %x %x", e, m1.SchemaVersion(), m2.SchemaVersion())
	}

	// A new column: a new version, compatible with the first.
	pgExec(t, db, `ALTER TABLE items ADD COLUMN price numeric`)
	pgExec(t, db, `INSERT INTO items VALUES (3, 'three', false, 1.5)`)
	e, m3 := read()
	if e.Op != "c" || e.After.ID != 3 || e.After.Price == nil || *e.After.Price != 1.5 || slices.Equal(m3.SchemaVersion(), m1.SchemaVersion()) {
		t.Fatalf("after ALTER TABLE: %+v, schema versions %x %x", e, m1.SchemaVersion(), m3.SchemaVersion())
	}
	var v1 registered
	if code, body := httpGet(t, schemaURL); code != http.StatusOK || json.Unmarshal([]byte(body), &v1) != nil {
		t.Fatalf("schema: %d %s", code, body)
	}
	if v1.Version != v0.Version+1 || !slices.Equal(rowFields(t, v1.Data), []string{"id", "name", "ok", "price"}) {
		t.Fatalf("the new version: %+v (first %d)", v1, v0.Version)
	}
	// A consumer made with the new version reads the old envelopes too.
	cons2, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "new-schema",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, Schema: pulsar.NewJSONSchema(v1.Data, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer cons2.Close()
	for _, want := range []int{1, 2, 3} {
		m := receiveN(t, cons2, 1, 20*time.Second)[0]
		var e envelope
		if err := m.GetSchemaValue(&e); err != nil || e.After.ID != want {
			t.Fatalf("new-schema consumer, row %d: %+v %v", want, e, err)
		}
		cons2.Ack(m)
	}
}

// rowFields are the field names of an envelope definition's row record.
func rowFields(t *testing.T, def string) []string {
	t.Helper()
	var env struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(def), &env); err != nil {
		t.Fatalf("definition %s: %v", def, err)
	}
	for _, f := range env.Fields {
		if f.Name != "before" {
			continue
		}
		var union []json.RawMessage
		json.Unmarshal(f.Type, &union)
		for _, u := range union {
			var rec struct {
				Fields []struct {
					Name string `json:"name"`
				} `json:"fields"`
			}
			if json.Unmarshal(u, &rec) == nil {
				var names []string
				for _, rf := range rec.Fields {
					names = append(names, rf.Name)
				}
				return names
			}
		}
	}
	return nil
}

// valueSchema avro: Avro binary envelopes under an AVRO schema in the
// registry, a new version after ALTER TABLE, decoded by the official
// client's Avro schema.
func TestPostgresCDCAvroSchemaEvolution(t *testing.T) {
	pg := pgtest.Start(t)
	db := pgConnect(t, pg.DSN("postgres"))
	pgExec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text)`)
	pgExec(t, db, `INSERT INTO items VALUES (1, 'one')`)
	s := startServer(t, server.Options{})
	cfg := fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"tables":["public.items"],"valueSchema":"avro"}}`, pg.DSN("postgres"))
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/pga", cfg); code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	schemaURL := s.WebURL() + "/admin/v2/schemas/public/default/postgres.public.items/schema"
	type registered struct {
		Version int64  `json:"version"`
		Type    string `json:"type"`
		Data    string `json:"data"`
	}
	var v0 registered
	waitFor(t, "the envelope schema in the registry", 20*time.Second, func() bool {
		code, body := httpGet(t, schemaURL)
		return code == http.StatusOK && json.Unmarshal([]byte(body), &v0) == nil
	})
	if v0.Type != "AVRO" || !slices.Equal(rowFields(t, v0.Data), []string{"id", "name"}) {
		t.Fatalf("registered schema: %+v", v0)
	}
	pgExec(t, db, `INSERT INTO items VALUES (2, 'two')`)
	pgExec(t, db, `ALTER TABLE items ADD COLUMN price numeric`)
	pgExec(t, db, `UPDATE items SET price = 2.5 WHERE id = 2`)
	var v1 registered
	waitFor(t, "a second schema version", 20*time.Second, func() bool {
		code, body := httpGet(t, schemaURL)
		return code == http.StatusOK && json.Unmarshal([]byte(body), &v1) == nil && v1.Version == v0.Version+1
	})
	if v1.Type != "AVRO" || !slices.Equal(rowFields(t, v1.Data), []string{"id", "name", "price"}) {
		t.Fatalf("second version: %+v", v1)
	}
	type row struct {
		ID    *int32   `avro:"id"`
		Name  *string  `avro:"name"`
		Price *float64 `avro:"price"`
	}
	type envelope struct {
		Before *row   `avro:"before"`
		After  *row   `avro:"after"`
		Op     string `avro:"op"`
		Source struct {
			Table string `avro:"table"`
			LSN   int64  `avro:"lsn"`
		} `avro:"source"`
	}
	c := newClient(t, s.BrokerURL())
	// A consumer with the newer version reads the older envelopes too.
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "persistent://public/default/postgres.public.items", SubscriptionName: "avro",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, Schema: pulsar.NewAvroSchema(v1.Data, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []envelope
	for _, m := range receiveN(t, cons, 3, 20*time.Second) {
		var e envelope
		if err := m.GetSchemaValue(&e); err != nil {
			t.Fatalf("decode %x: %v", m.Payload(), err)
		}
		got = append(got, e)
	}
	if got[0].Op != "r" || *got[0].After.ID != 1 || *got[0].After.Name != "one" || got[0].After.Price != nil || got[0].Source.Table != "items" {
		t.Fatalf("snapshot row: %+v", got[0])
	}
	if got[1].Op != "c" || *got[1].After.ID != 2 || got[1].Source.LSN == 0 {
		t.Fatalf("insert: %+v", got[1])
	}
	if got[2].Op != "u" || *got[2].After.ID != 2 || got[2].After.Price == nil || *got[2].After.Price != 2.5 || *got[2].After.Name != "two" {
		t.Fatalf("update after ALTER TABLE: %+v", got[2])
	}
}
