package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/jackc/pgx/v5"
	"github.com/messagebus/messagebus/internal/testutil/pgtest"
	"github.com/messagebus/messagebus/server"
)

// The postgres source against a real PostgreSQL 15 (internal/testutil/pgtest)
// and a real `mb standalone` process (killed with -9 in the middle).

type pgEnvelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Op     string         `json:"op"`
	TsMs   int64          `json:"ts_ms"`
	Source struct {
		LSN      uint64 `json:"lsn"`
		TxID     uint32 `json:"txId"`
		Snapshot string `json:"snapshot"`
		DB       string `json:"db"`
		Schema   string `json:"schema"`
		Table    string `json:"table"`
		TsMs     int64  `json:"ts_ms"`
	} `json:"source"`
}

func pgExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func receiveEnvelope(t *testing.T, c pulsar.Consumer) (pgEnvelope, pulsar.Message) {
	t.Helper()
	m := receiveN(t, c, 1, 20*time.Second)[0]
	var e pgEnvelope
	if err := json.Unmarshal(m.Payload(), &e); err != nil {
		t.Fatalf("envelope %s: %v", m.Payload(), err)
	}
	c.Ack(m)
	return e, m
}

func TestPostgresCDCSnapshotStreamOutboxAndKill(t *testing.T) {
	pg := pgtest.Start(t)
	db := pgConnect(t, pg.DSN("postgres"))
	pgExec(t, db, `CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int)`)
	pgExec(t, db, `CREATE TABLE outbox (id serial PRIMARY KEY, aggregate_type text, aggregate_id text, payload jsonb)`)
	pgExec(t, db, `CREATE TABLE other (v int)`)
	pgExec(t, db, `INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 5)`)

	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	cfg := fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"tables":["public.orders"],
		"heartbeatIntervalMs":200,"outbox":{"table":"public.outbox","routeColumn":"aggregate_type","keyColumn":"aggregate_id",
		"payloadColumn":"payload","topicPattern":"persistent://public/default/outbox.{route}"}}}`, pg.DSN("postgres"))
	if code, body := postJSON(t, http.MethodPost, p.webURL+"/admin/v3/sources/public/default/pg", cfg); code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	c := newClient(t, p.brokerURL)
	orders := subscribeEarliest(t, c, "persistent://public/default/postgres.public.orders")
	outbox := subscribeEarliest(t, c, "persistent://public/default/outbox.order")

	for want := 1; want <= 2; want++ {
		e, m := receiveEnvelope(t, orders)
		if e.Op != "r" || e.Source.Snapshot != "true" || e.After["id"] != float64(want) || m.Key() != fmt.Sprintf(`{"id":%d}`, want) ||
			e.Source.Table != "orders" || e.Source.Schema != "public" || e.Source.DB != "postgres" {
			t.Fatalf("snapshot row %d: %+v key %s", want, e, m.Key())
		}
	}
	pgExec(t, db, `INSERT INTO orders VALUES (3, 'plum', 1)`)
	pgExec(t, db, `UPDATE orders SET qty = 9 WHERE id = 1`)
	pgExec(t, db, `DELETE FROM orders WHERE id = 2`)
	pgExec(t, db, `INSERT INTO outbox (aggregate_type, aggregate_id, payload) VALUES ('order', 'o-17', '{"total": 42}')`)
	pgExec(t, db, `DELETE FROM outbox`)
	e, m := receiveEnvelope(t, orders)
	if e.Op != "c" || e.After["item"] != "plum" || e.Before != nil || e.Source.Snapshot != "false" || e.Source.LSN == 0 || e.Source.TxID == 0 || m.Key() != `{"id":3}` {
		t.Fatalf("insert: %+v", e)
	}
	e, _ = receiveEnvelope(t, orders)
	if e.Op != "u" || e.After["qty"] != float64(9) {
		t.Fatalf("update: %+v", e)
	}
	e, m = receiveEnvelope(t, orders)
	if e.Op != "d" || e.After != nil || e.Before["id"] != float64(2) || m.Key() != `{"id":2}` {
		t.Fatalf("delete: %+v key %s", e, m.Key())
	}
	om := receiveN(t, outbox, 1, 20*time.Second)[0]
	if om.Key() != "o-17" || strings.ReplaceAll(string(om.Payload()), " ", "") != `{"total":42}` {
		t.Fatalf("outbox message key %q payload %s", om.Key(), om.Payload())
	}
	outbox.Ack(om)
	expectNoMessage(t, outbox, 300*time.Millisecond) // the outbox delete is not sent

	// Heartbeats: WAL written to a table outside the publication is
	// confirmed too, so an idle slot does not hold WAL back.
	pgExec(t, db, `INSERT INTO other SELECT generate_series(1, 1000)`)
	var walEnd string
	if err := db.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&walEnd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slot's confirmed flush LSN to pass "+walEnd, 20*time.Second, func() bool {
		var ok bool
		err := db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'mb_pg'`, walEnd).Scan(&ok)
		return err == nil && ok
	})

	// kill -9 mb while rows are committed, then restart Postgres too: every
	// row arrives after the restarts.
	const n = 400
	done := make(chan error, 1)
	go func() {
		w, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
		if err != nil {
			done <- err
			return
		}
		defer w.Close(context.Background())
		for i := 100; i < 100+n; i++ {
			if _, err := w.Exec(context.Background(), `INSERT INTO orders VALUES ($1, 'bulk', $1)`, i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	got := map[int]bool{}
	for len(got) < 50 {
		e, _ := receiveEnvelope(t, orders)
		got[int(e.After["id"].(float64))] = true
	}
	p.kill(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pg.Restart()
	p = startProc(t, dir, p.brokerPort, p.httpPort)
	c = newClient(t, p.brokerURL)
	orders2, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "persistent://public/default/postgres.public.orders",
		SubscriptionName: "after-kill", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer orders2.Close()
	got = map[int]bool{}
	total := 0
	for len(got) < n {
		e, _ := receiveEnvelope(t, orders2)
		if e.Op != "c" {
			continue
		}
		if id := int(e.After["id"].(float64)); id >= 100 {
			got[id] = true
			total++
		}
	}
	t.Logf("%d rows in %d messages after kill -9 and a Postgres restart", len(got), total)
}

func TestPostgresCDCPermissionError(t *testing.T) {
	pg := pgtest.Start(t)
	db := pgConnect(t, pg.DSN("postgres"))
	pgExec(t, db, `CREATE TABLE t1 (id int PRIMARY KEY)`)
	pgExec(t, db, `CREATE ROLE plain LOGIN`)
	s := startServer(t, server.Options{})
	dsn := strings.Replace(pg.DSN("postgres"), "postgres@", "plain@", 1)
	cfg := fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"tables":["public.t1"]}}`, dsn)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/noperm", cfg); code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	waitFor(t, "a permission error in the status", 20*time.Second, func() bool {
		resp, err := http.Get(s.WebURL() + "/admin/v3/sources/public/default/noperm/0/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&st)
		if strings.Contains(st.Error, "permission denied") && strings.Contains(st.Error, "REPLICATION") {
			t.Logf("status error: %s", st.Error)
			return true
		}
		return false
	})
	// The password is a secret: a plain value is refused.
	code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/pw",
		fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"password":"hunter2"}}`, dsn))
	if code != http.StatusBadRequest || !strings.Contains(body, "is a secret") {
		t.Fatalf("plain password: %d %s", code, body)
	}
}
