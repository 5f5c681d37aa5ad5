package lake

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func TestEncodeInfersColumns(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	rows := []row{
		newRow("persistent://public/default/t", "k1", "1:0:-1:0", at, map[string]string{"p": "v"}, []byte(`{"id":1,"price":2,"name":"a","ok":true,"tags":["x"]}`)),
		newRow("persistent://public/default/t", "", "1:1:-1:0", at, nil, []byte(`{"id":2,"price":2.5,"name":null,"__topic":"hidden"}`)),
		newRow("persistent://public/default/t", "k3", "1:2:-1:0", at, nil, []byte("plain text")),
	}
	data, err := encode(rows, nil, &parquet.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.NumRows() != 3 {
		t.Fatalf("%d rows", f.NumRows())
	}
	types := map[string]string{}
	for _, fl := range f.Schema().Fields() {
		types[fl.Name()] = fl.Type().String()
	}
	for col, want := range map[string]string{"id": "INT(64,true)", "price": "DOUBLE", "ok": "BOOLEAN", "name": "STRING",
		"tags": "JSON", "__publish_time": "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)", "__value": "STRING"} {
		if types[col] != want {
			t.Errorf("column %s: %s, want %s (all: %v)", col, types[col], want, types)
		}
	}
	got := make([]map[string]any, 3)
	r := parquet.NewGenericReader[map[string]any](f, f.Schema())
	for i := range got {
		got[i] = map[string]any{}
	}
	if n, err := r.Read(got); n != 3 {
		t.Fatalf("read %d: %v", n, err)
	}
	if got[0]["name"] != "a" || got[1]["__topic"] != "persistent://public/default/t" || got[2]["__value"] != "plain text" || got[1]["__key"] != nil {
		t.Fatalf("rows %v", got)
	}
}

func TestPartitionDir(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.FixedZone("x", 3600))
	if d := partitionDir("persistent://public/default/orders-partition-3", at); d != "public/default/orders/dt=2026-12-07/hour=04" {
		t.Fatal(d)
	}
}

// Append mode's jsonlite rows give the same file as encoding/json's.
func TestAppendRowsEncodeLikeDecodedRows(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	payloads := []string{
		`{"id":1,"price":2,"name":"a","ok":true,"tags":["x",{"b":1,"a":[2]}],"obj":{"z":1,"a":"<&>"},"mixed":1}`,
		` {"id":9223372036854775807,"price":1e3,"name":"tab\there \u00e9 \ud83d\ude00","ok":false,"mixed":"s<>"}` + "\n",
		`{"id":null,"price":-0.5,"name":"","tags":[],"obj":{},"mixed":[1, 2 ,{ "k" : "v" }],"__key":"hidden"}`,
		`{"id":18446744073709551616,"dup":1,"dup":"last"}`,
		"{\"name\":\"bad \xff utf8\"}",
		`{"id":2}garbage`, `[1,2]`, `"text"`, `{"open":`, `plain text`, ``,
		`{"esc\"aped":1,"unicode\u0041":true}`,
		// Over 512 bytes: jsonlite's vectorised parser.
		`{"id":3,"name":"` + strings.Repeat("long é ", 80) + `","obj":{"deep":{"x":[1,{"y":null}]}},"tags":["` + strings.Repeat("t", 300) + `"],"mixed":2.5}`,
		`{"id":4,"name":"` + strings.Repeat("x", 600) + `","dup":1,"dup":2}`,
	}
	var decoded, parsed []row
	for i, p := range payloads {
		id := fmt.Sprintf("1:%d:-1:0", i)
		decoded = append(decoded, newRow("persistent://public/default/t", "k", id, at, map[string]string{"p": "v"}, []byte(p)))
		parsed = append(parsed, newAppendRow("persistent://public/default/t", "k", id, at, map[string]string{"p": "v"}, []byte(p)))
	}
	if parsed[0].obj == nil || parsed[3].obj != nil || parsed[4].obj != nil || parsed[12].obj == nil || parsed[13].obj != nil {
		t.Fatal("payloads parsed by jsonlite, or not, other than expected")
	}
	want, err := encode(decoded, nil, &parquet.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encode(parsed, nil, &parquet.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		read := func(data []byte) []map[string]any {
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			rows := make([]map[string]any, len(payloads))
			for i := range rows {
				rows[i] = map[string]any{}
			}
			parquet.NewGenericReader[map[string]any](f, f.Schema()).Read(rows)
			return rows
		}
		w, g := read(want), read(got)
		for i := range w {
			if fmt.Sprint(w[i]) != fmt.Sprint(g[i]) {
				t.Errorf("payload %q:\n got %v\nwant %v", payloads[i], g[i], w[i])
			}
		}
		t.Fatal("the files differ")
	}
}
