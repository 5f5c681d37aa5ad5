package connectors

import (
	"math"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/messagebus/messagebus/internal/schema"
)

// The hand-written Avro envelope decodes with its registered definition.
func TestAvroEnvelopeDecodesWithItsSchema(t *testing.T) {
	cols := []column{{"id", 23}, {"big", 20}, {"ok", 16}, {"f4", 700}, {"f8", 701}, {"num", 1700}, {"name", 25}, {"data", 17}, {"doc", 3802}, {"gone", 25}}
	def := envelopeSchemaDef("shop", "public", "t", cols)
	sc, err := schema.ParseAvro([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	env := envelope{
		Before: map[string]any{"id": int32(1)},
		After: map[string]any{"id": int32(1), "big": int64(-1 << 40), "ok": true, "f4": float32(1.5), "f8": math.Pi, "num": jsonRaw("12.25"),
			"name": "héllo", "data": []byte{1, 2}, "doc": map[string]any{"a": 1}, "gone": nil},
		Op: "u", TsMs: 1733500000012,
		Source: envelopeSource{Version: "messagebus", Connector: "postgresql", Name: "n", TsMs: 5, Snapshot: "false", DB: "shop",
			Schema: "public", Table: "t", TxID: 761, LSN: 24307136},
	}
	b, err := appendAvroEnvelope(nil, &env, cols)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Before map[string]any `avro:"before"`
		After  map[string]any `avro:"after"`
		Source map[string]any `avro:"source"`
		Op     string         `avro:"op"`
		TsMs   int64          `avro:"ts_ms"`
	}
	if err := avro.Unmarshal(sc, b, &got); err != nil {
		t.Fatal(err)
	}
	// Generic decoding keeps a union's record under its full name.
	a, _ := got.After["shop.public.t.Value"].(map[string]any)
	before, _ := got.Before["shop.public.t.Value"].(map[string]any)
	if a["id"] != 1 || a["big"] != int64(-1<<40) || a["ok"] != true || a["f4"] != float32(1.5) || a["f8"] != math.Pi || a["num"] != 12.25 ||
		a["name"] != "héllo" || a["data"] != "AQI=" || a["doc"] != `{"a":1}` || a["gone"] != nil {
		t.Errorf("after %#v", a)
	}
	if before["id"] != 1 || before["name"] != nil || got.Op != "u" || got.TsMs != 1733500000012 ||
		got.Source["lsn"] != int64(24307136) || got.Source["txId"] != int64(761) || got.Source["table"] != "t" {
		t.Errorf("envelope %#v", got)
	}
	env.After["id"] = "x"
	if _, err := appendAvroEnvelope(nil, &env, cols); err == nil {
		t.Error("a string for an int column was written")
	}
}
