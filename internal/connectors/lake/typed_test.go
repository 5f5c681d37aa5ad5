package lake

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/hamba/avro/v2"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/parquet-go/parquet-go"
)

const orderDef = `{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"id","type":"long"},{"name":"qty","type":["null","int"],"default":null},
 {"name":"price","type":"double"},{"name":"ratio","type":"float"},{"name":"ok","type":"boolean"},
 {"name":"item","type":["null","string"],"default":null},{"name":"raw","type":"bytes"},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","DONE"]}},
 {"name":"addr","type":["null",{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}],"default":null},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"__key","type":"string"}]}`

// typedFile encodes payloads with vs and reads the file back.
func typedFile(t *testing.T, vs *valueSchema, payloads ...[]byte) (map[string]string, []map[string]any) {
	t.Helper()
	var rows []row
	for i, p := range payloads {
		r := row{topic: "t", messageID: "1:0:-1:0", publish: time.UnixMilli(int64(i))}
		vals, err := vs.values(p)
		if err != nil {
			r.value = p
		} else {
			r.typed = vals
		}
		rows = append(rows, r)
	}
	data, err := encode(rows, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, fl := range f.Schema().Fields() {
		types[fl.Name()] = fl.Type().String()
	}
	got := make([]map[string]any, len(payloads))
	for i := range got {
		got[i] = map[string]any{}
	}
	if n, err := parquet.NewGenericReader[map[string]any](f, f.Schema()).Read(got); n != len(got) {
		t.Fatalf("read %d: %v", n, err)
	}
	return types, got
}

func TestTypedColumnsFromAvroSchema(t *testing.T) {
	vs, err := newValueSchema("t@00", connectors.TopicSchema{Type: "AVRO", Definition: []byte(orderDef)})
	if err != nil || vs == nil {
		t.Fatal(vs, err)
	}
	at := time.UnixMilli(1733500000123).UTC()
	good, err := avro.Marshal(vs.record, map[string]any{"id": int64(7), "qty": 3, "price": 2.5, "ratio": float32(0.5), "ok": true,
		"item": "plum", "raw": []byte{0, 1}, "at": at, "day": time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), "status": "DONE",
		"addr": map[string]any{"shop.Addr": map[string]any{"city": "Oslo"}}, "tags": []any{"a", "b"}, "__key": "x"})
	if err != nil {
		t.Fatal(err)
	}
	types, got := typedFile(t, vs, good, []byte("not avro"))
	for col, want := range map[string]string{"id": "INT(64,true)", "qty": "INT(32,true)", "price": "DOUBLE", "ratio": "FLOAT",
		"ok": "BOOLEAN", "item": "STRING", "raw": "BYTE_ARRAY", "at": "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)",
		"day": "DATE", "status": "STRING", "addr": "JSON", "tags": "JSON", "__key": "STRING"} {
		if types[col] != want {
			t.Errorf("column %s: %s, want %s", col, types[col], want)
		}
	}
	r := got[0]
	if r["id"] != int64(7) || r["qty"] != int32(3) || r["item"] != "plum" || r["status"] != "DONE" || fmt.Sprint(r["addr"]) != "map[city:Oslo]" ||
		fmt.Sprint(r["tags"]) != "[a b]" || r["__key"] != nil || r["day"] != int32(20794) {
		t.Errorf("row %v", r)
	}
	if got[1]["__value"] != "not avro" || got[1]["id"] != nil {
		t.Errorf("a payload that does not decode: %v", got[1])
	}
}

func TestTypedColumnsFromJSONSchema(t *testing.T) {
	vs, err := newValueSchema("t@01", connectors.TopicSchema{Type: "JSON", Definition: []byte(orderDef)})
	if err != nil || vs == nil {
		t.Fatal(vs, err)
	}
	types, got := typedFile(t, vs, []byte(`{"id":9,"qty":null,"price":1,"ok":false,"item":"x","addr":{"city":"Rome"},"extra":1}`),
		[]byte(`{"id":"nine"}`))
	if types["id"] != "INT(64,true)" || types["price"] != "DOUBLE" || types["extra"] != "" {
		t.Errorf("types %v", types)
	}
	if got[0]["id"] != int64(9) || got[0]["price"] != 1.0 || got[0]["qty"] != nil || fmt.Sprint(got[0]["addr"]) != "map[city:Rome]" {
		t.Errorf("row %v", got[0])
	}
	if got[1]["__value"] != `{"id":"nine"}` {
		t.Errorf("a field of the wrong type: %v", got[1])
	}
	if vs, err := newValueSchema("t@02", connectors.TopicSchema{Type: "STRING"}); vs != nil || err != nil {
		t.Errorf("STRING schema: %v %v", vs, err)
	}
}

// fakeMsg is the part of a message the sink reads.
type fakeMsg struct {
	pulsar.Message
	key     string
	payload []byte
	version []byte
}

func (m fakeMsg) ID() pulsar.MessageID          { return pulsar.EarliestMessageID() }
func (m fakeMsg) Key() string                   { return m.key }
func (m fakeMsg) Payload() []byte               { return m.payload }
func (m fakeMsg) Topic() string                 { return "persistent://public/default/t" }
func (m fakeMsg) PublishTime() time.Time        { return time.UnixMilli(1) }
func (m fakeMsg) Properties() map[string]string { return nil }
func (m fakeMsg) SchemaVersion() []byte         { return m.version }

// Upsert mode recognises Avro envelopes (the postgres source's avro mode).
func TestUpsertAppliesAvroEnvelopes(t *testing.T) {
	def := `{"type":"record","name":"Envelope","namespace":"db.public.t","fields":[
	 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":["null","int"],"default":null},{"name":"qty","type":["null","long"],"default":null}]}],"default":null},
	 {"name":"after","type":["null","db.public.t.Value"],"default":null},
	 {"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"table","type":"string"}]}},
	 {"name":"op","type":"string"},{"name":"ts_ms","type":"long"}]}`
	vs, err := newValueSchema("public/default/t@01", connectors.TopicSchema{Type: "AVRO", Definition: []byte(def)})
	if err != nil {
		t.Fatal(err)
	}
	sc := &schemas{known: map[string]*valueSchema{"public/default/t@01": vs}}
	tbl := &upsertTable{sc: sc, rows: map[string]*upsertRow{}}
	env := func(op string, id int, qty int64) []byte {
		row := map[string]any{"db.public.t.Value": map[string]any{"id": map[string]any{"int": id}, "qty": map[string]any{"long": qty}}}
		e := map[string]any{"before": nil, "after": row, "source": map[string]any{"table": "t"}, "op": op, "ts_ms": int64(1)}
		if op == "d" {
			e["before"], e["after"] = row, nil
		}
		b, err := avro.Marshal(vs.record, e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, m := range []fakeMsg{
		{key: `{"id":1}`, payload: env("c", 1, 10)}, {key: `{"id":2}`, payload: env("c", 2, 20)},
		{key: `{"id":1}`, payload: env("u", 1, 11)}, {key: `{"id":2}`, payload: env("d", 2, 20)},
	} {
		m.version = []byte{1}
		tbl.add(m)
	}
	if len(tbl.rows) != 1 || fmt.Sprint(tbl.rows[`{"id":1}`].Fields) != "map[id:1 qty:11]" {
		for k, r := range tbl.rows {
			t.Logf("%s: %v", k, r.Fields)
		}
		t.Fatalf("%d rows", len(tbl.rows))
	}
}
