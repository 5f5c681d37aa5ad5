package test

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
	"github.com/messagebus/messagebus/internal/testutil/vaulttest"
	"github.com/messagebus/messagebus/server"
)

// startLake starts the Versity gateway with a bucket "lake", a broker and
// a client, and gives the lake sink's configs the gateway's keys as env:
// references (MB_TEST_S3_KEY, MB_TEST_S3_SECRET); topic is a fresh one.
func startLake(t *testing.T) (g *s3test.Gateway, s *server.Server, c pulsar.Client, topic string) {
	t.Helper()
	g = s3test.Start(t)
	g.Bucket(t, "lake", nil)
	t.Setenv("MB_TEST_S3_KEY", s3test.AccessKey)
	t.Setenv("MB_TEST_S3_SECRET", s3test.SecretKey)
	s = startServer(t, server.Options{})
	return g, s, newClient(t, s.BrokerURL()), uniqueTopic(t)
}

// The lake sink into the Versity S3 gateway; the Parquet files are read
// back with DuckDB (duckdb-go, in-process) from the gateway's directory.
func TestLakeSinkWritesParquetForDuckDB(t *testing.T) {
	g, s, c, topic := startLake(t)
	cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake","prefix":"bus",
		"accessKeyId":"env:MB_TEST_S3_KEY","secretAccessKey":"env:MB_TEST_S3_SECRET","rollSizeBytes":4096,"rollIntervalMs":300}}`, topic, g.Endpoint)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/lake", cfg); code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 300
	for i := range n {
		p.SendAsync(t.Context(), &pulsar.ProducerMessage{Key: fmt.Sprintf("k%d", i%7), Properties: map[string]string{"src": "test"},
			Payload: fmt.Appendf(nil, `{"id":%d,"name":"n%d","price":%d.5,"tags":["a"]}`, i, i, i)}, nil)
	}
	if err := p.FlushWithCtx(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to acknowledge every message", 30*time.Second, func() bool {
		resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/lake/0/status")
		if err != nil {
			return false
		}
		var st struct{ NumWrittenToSink int64 }
		decodeResponse(resp, &st)
		return st.NumWrittenToSink == n
	})

	// Files under bus/<tenant>/<ns>/<topic>/dt=YYYY-MM-DD/hour=HH/, more than
	// one (rolled by size), nothing else in the bucket.
	local := strings.TrimPrefix(topic, "persistent://")
	var files []string
	filepath.Walk(filepath.Join(g.Dir, "lake"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	now := time.Now().UTC()
	wantDir := filepath.Join(g.Dir, "lake", "bus", local, "dt="+now.Format("2006-01-02"))
	for _, f := range files {
		if !strings.HasPrefix(f, wantDir) || !strings.HasSuffix(f, ".parquet") {
			t.Fatalf("unexpected object %s (want under %s)", f, wantDir)
		}
	}
	if len(files) < 2 {
		t.Fatalf("%d files; 4 KiB rolls should give several", len(files))
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(g.Dir, "lake", "bus", local) + "/**/*.parquet"
	var count, distinct, sumID int64
	var dt string
	var hour int
	q := fmt.Sprintf(`select count(*), count(distinct __message_id), sum(id), min(dt)::varchar, min(hour) from read_parquet('%s', hive_partitioning = true)`, glob)
	if err := db.QueryRow(q).Scan(&count, &distinct, &sumID, &dt, &hour); err != nil {
		t.Fatal(err)
	}
	if count != n || distinct != n || sumID != n*(n-1)/2 || dt != now.Format("2006-01-02") {
		t.Fatalf("duckdb: count %d distinct %d sum %d dt %s", count, distinct, sumID, dt)
	}
	var name, key, props, tp string
	var price float64
	var tags string
	q = fmt.Sprintf(`select name, price, __key, __properties::varchar, __topic, tags::varchar from read_parquet('%s') where id = 42`, glob)
	if err := db.QueryRow(q).Scan(&name, &price, &key, &props, &tp, &tags); err != nil {
		t.Fatal(err)
	}
	if name != "n42" || price != 42.5 || key != "k0" || props != `{"src":"test"}` || tp != topic || tags != `["a"]` {
		t.Fatalf("row 42: %s %v %s %s %s %s", name, price, key, props, tp, tags)
	}
	t.Logf("%d rows in %d Parquet files, hour=%d", count, len(files), hour)
}

// Upsert mode: CDC envelopes on a topic become one table of the latest
// row per key (deletes and tombstones remove the key), which survives a
// restart of the sink (its state is read back from the bucket).
func TestLakeSinkUpsertLatestRowPerKey(t *testing.T) {
	g, s, c, topic := startLake(t)
	cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake",
		"accessKeyId":"env:MB_TEST_S3_KEY","secretAccessKey":"env:MB_TEST_S3_SECRET","rollIntervalMs":200,"mode":"upsert"}}`, topic, g.Endpoint)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/up", cfg); code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	written := int64(0)
	send := func(key, payload string) {
		t.Helper()
		if _, err := p.Send(t.Context(), &pulsar.ProducerMessage{Key: key, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
		written++
	}
	env := func(op string, id int, qty int) string {
		row := fmt.Sprintf(`{"id":%d,"qty":%d}`, id, qty)
		before, after := "null", row
		if op == "d" {
			before, after = row, "null"
		}
		return fmt.Sprintf(`{"before":%s,"after":%s,"op":%q,"source":{"table":"t"},"ts_ms":1}`, before, after, op)
	}
	waitWritten := func() {
		t.Helper()
		waitFor(t, "the sink to acknowledge every message", 30*time.Second, func() bool {
			resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/up/0/status")
			if err != nil {
				return false
			}
			var st struct{ NumWrittenToSink int64 }
			decodeResponse(resp, &st)
			return st.NumWrittenToSink == written
		})
	}
	// 20 keys, each inserted then updated 4 times; 5 deleted, 1 tombstoned.
	for id := range 20 {
		send(fmt.Sprintf(`{"id":%d}`, id), env("c", id, 0))
	}
	for round := 1; round <= 4; round++ {
		for id := range 20 {
			send(fmt.Sprintf(`{"id":%d}`, id), env("u", id, round*100+id))
		}
	}
	for id := range 5 {
		send(fmt.Sprintf(`{"id":%d}`, id), env("d", id, 0))
	}
	send(`{"id":5}`, "")
	waitWritten()

	file := filepath.Join(g.Dir, "lake", strings.TrimPrefix(topic, "persistent://"), "latest.parquet")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(wantRows, wantMin, wantSum int64) {
		t.Helper()
		var rows, minID, sumQty int64
		q := fmt.Sprintf(`select count(*), min(id), sum(qty) from read_parquet('%s')`, file)
		if err := db.QueryRow(q).Scan(&rows, &minID, &sumQty); err != nil {
			t.Fatal(err)
		}
		if rows != wantRows || minID != wantMin || sumQty != wantSum {
			t.Fatalf("latest.parquet: %d rows, min id %d, sum qty %d; want %d, %d, %d", rows, minID, sumQty, wantRows, wantMin, wantSum)
		}
	}
	sum := int64(0)
	for id := 6; id < 20; id++ {
		sum += int64(400 + id)
	}
	check(14, 6, sum)

	// Restart the sink: the table is read back and updated, not rebuilt.
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/up/restart", ""); code != http.StatusNoContent {
		t.Fatalf("restart: %d %s", code, body)
	}
	send(`{"id":6}`, env("u", 6, 1000))
	send(`{"id":7}`, env("d", 7, 0))
	waitFor(t, "the table after the restart", 30*time.Second, func() bool {
		var rows int64
		err := db.QueryRow(fmt.Sprintf(`select count(*) from read_parquet('%s') where id = 6 and qty = 1000`, file)).Scan(&rows)
		return err == nil && rows == 1
	})
	check(13, 6, sum-406-407+1000)
}

// Secrets as references to Vault (the access plane's --vault-addr; the
// in-test KV v2 fake, no Vault server runs here): the lake sink's S3 keys
// come from a Vault secret, which `get` shows only as its reference.
func TestConnectorVaultSecretReferences(t *testing.T) {
	g := s3test.Start(t)
	g.Bucket(t, "lake", nil)
	v := vaulttest.New(t, vaultRootToken)
	vc, err := vault.New(vault.Config{Address: v.URL, Token: vaultRootToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Put(t.Context(), "connectors/lake", map[string]any{"key": s3test.AccessKey, "secret": s3test.SecretKey}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, server.Options{Access: server.Access{VaultAddr: v.URL, VaultToken: vaultRootToken}})
	topic := uniqueTopic(t)
	create := func(name, secretRef string) {
		t.Helper()
		cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake","prefix":%q,
			"accessKeyId":"vault:connectors/lake#key","secretAccessKey":%q,"rollIntervalMs":100}}`, topic, g.Endpoint, name, secretRef)
		if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/"+name, cfg); code != http.StatusNoContent {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
	}
	create("good", "vault:connectors/lake#secret")
	create("bad", "vault:connectors/lake#missing")
	produceStrings(t, newClient(t, s.BrokerURL()), topic, "a", "b", "c")
	waitFor(t, "the sink to write with the Vault credentials", 30*time.Second, func() bool {
		resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/good/0/status")
		if err != nil {
			return false
		}
		var st struct{ NumWrittenToSink int64 }
		decodeResponse(resp, &st)
		return st.NumWrittenToSink == 3
	})
	waitFor(t, "the unresolved reference in the status", 30*time.Second, func() bool {
		_, body := httpGet(t, s.WebURL()+"/admin/v3/sinks/public/default/bad/0/status")
		return strings.Contains(body, `vault:connectors/lake#missing: the secret has no field \"missing\"`)
	})
	code, body := httpGet(t, s.WebURL()+"/admin/v3/sinks/public/default/good")
	if code != http.StatusOK || !strings.Contains(body, "vault:connectors/lake#secret") || strings.Contains(body, s3test.SecretKey) {
		t.Fatalf("get: %d %s", code, body)
	}
	code, body = postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/x",
		fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"bucket":"lake","secretAccessKey":"vault:connectors/lake"}}`, topic))
	if code != http.StatusBadRequest || !strings.Contains(body, `vault reference \"vault:connectors/lake\": want vault:`) {
		t.Fatalf("malformed reference: %d %s", code, body)
	}
}

// A topic with an Avro schema in the registry: the lake sink types the
// columns from the schema's fields (DuckDB sees INTEGER, not a JSON guess
// or the raw Avro bytes).
func TestLakeSinkTypedColumnsFromRegistrySchema(t *testing.T) {
	g, s, c, topic := startLake(t)
	cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake",
		"accessKeyId":"env:MB_TEST_S3_KEY","secretAccessKey":"env:MB_TEST_S3_SECRET","rollIntervalMs":200}}`, topic, g.Endpoint)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/typed", cfg); code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	type order struct {
		ID    int64   `avro:"id"`
		Qty   int32   `avro:"qty"`
		Price float64 `avro:"price"`
		Item  *string `avro:"item"`
		Ok    bool    `avro:"ok"`
	}
	def := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int"},
		{"name":"price","type":"double"},{"name":"item","type":["null","string"],"default":null},{"name":"ok","type":"boolean"}]}`
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(def, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 50
	for i := range n {
		item := fmt.Sprintf("i%d", i)
		msg := &pulsar.ProducerMessage{Key: fmt.Sprint(i), Value: &order{ID: int64(i), Qty: int32(i % 5), Price: float64(i) + 0.25, Item: &item, Ok: i%2 == 0}}
		if i == 3 {
			msg.Value.(*order).Item = nil
		}
		p.SendAsync(t.Context(), msg, nil)
	}
	if err := p.FlushWithCtx(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to acknowledge every message", 30*time.Second, func() bool {
		resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/typed/0/status")
		if err != nil {
			return false
		}
		var st struct{ NumWrittenToSink int64 }
		decodeResponse(resp, &st)
		return st.NumWrittenToSink == n
	})
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(g.Dir, "lake", strings.TrimPrefix(topic, "persistent://")) + "/**/*.parquet"
	var tID, tQty, tPrice, tItem, tOk string
	var count, sumID, sumQty, nullItems, oks int64
	var sumPrice float64
	q := fmt.Sprintf(`select any_value(typeof(id)), any_value(typeof(qty)), any_value(typeof(price)), any_value(typeof(item)), any_value(typeof(ok)),
		count(*), sum(id), sum(qty), sum(price), count(*) - count(item), count(*) filter (where ok) from read_parquet('%s')`, glob)
	if err := db.QueryRow(q).Scan(&tID, &tQty, &tPrice, &tItem, &tOk, &count, &sumID, &sumQty, &sumPrice, &nullItems, &oks); err != nil {
		t.Fatal(err)
	}
	if tID != "BIGINT" || tQty != "INTEGER" || tPrice != "DOUBLE" || tItem != "VARCHAR" || tOk != "BOOLEAN" {
		t.Fatalf("column types id %s qty %s price %s item %s ok %s", tID, tQty, tPrice, tItem, tOk)
	}
	if count != n || sumID != n*(n-1)/2 || sumQty != 100 || sumPrice != float64(n*(n-1)/2)+0.25*n || nullItems != 1 || oks != n/2 {
		t.Fatalf("duckdb: count %d sum(id) %d sum(qty) %d sum(price) %v null items %d ok %d", count, sumID, sumQty, sumPrice, nullItems, oks)
	}
	var item string
	if err := db.QueryRow(fmt.Sprintf(`select item from read_parquet('%s') where id = 42`, glob)).Scan(&item); err != nil || item != "i42" {
		t.Fatalf("row 42: %q %v", item, err)
	}
}

// A PUT that fails (the gateway killed) acknowledges nothing of its file:
// the session ends with the error in the status, and once the gateway is
// back the messages come again and every one is in a file.
func TestLakeSinkFailedPutRedelivers(t *testing.T) {
	g, s, c, topic := startLake(t)
	cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake",
		"accessKeyId":"env:MB_TEST_S3_KEY","secretAccessKey":"env:MB_TEST_S3_SECRET","rollSizeBytes":2048,"rollIntervalMs":200}}`, topic, g.Endpoint)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/lake", cfg); code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	type status struct {
		NumWrittenToSink  int64
		NumSinkExceptions int64
	}
	st := func() status {
		var v status
		if resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/lake/0/status"); err == nil {
			decodeResponse(resp, &v)
		}
		return v
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			p.SendAsync(t.Context(), &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, `{"id":%d,"note":"a row of some forty bytes"}`, i)}, nil)
		}
		if err := p.FlushWithCtx(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 100)
	waitFor(t, "the first 100 rows written", 30*time.Second, func() bool { return st().NumWrittenToSink == 100 })
	g.Kill()
	produce(100, 200)
	waitFor(t, "the failed PUT in the status", 60*time.Second, func() bool { return st().NumSinkExceptions > 0 })
	if w := st().NumWrittenToSink; w != 100 {
		t.Fatalf("%d written with the gateway down; want 100", w)
	}
	if err := g.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every row written after the restart", 60*time.Second, func() bool { return st().NumWrittenToSink >= 200 })
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var count, distinct, sum int64
	q := fmt.Sprintf(`select count(*), count(distinct id), sum(distinct id) from read_parquet('%s/**/*.parquet')`,
		filepath.Join(g.Dir, "lake", strings.TrimPrefix(topic, "persistent://")))
	if err := db.QueryRow(q).Scan(&count, &distinct, &sum); err != nil {
		t.Fatal(err)
	}
	if distinct != 200 || sum != 199*200/2 || count < 200 {
		t.Fatalf("%d rows, %d distinct ids, sum %d", count, distinct, sum)
	}
}
