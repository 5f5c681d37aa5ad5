package connectors

import (
	"encoding/json"
	"testing"
	"time"
)

// The hand-written envelope is what encoding/json writes for it (with
// the columns in the map's sorted order, as encoding/json orders them).
func TestAppendEnvelopeMatchesEncodingJSON(t *testing.T) {
	row := map[string]any{"a_int": int64(-42), "b_i32": int32(7), "c_i16": int16(3), "d_bool": true, "e_text": "x\"<&>\u2028\n\t\x01é\xff",
		"f_null": nil, "g_float": 1.5e300, "h_bytes": []byte{0, 1, 2}, "i_num": jsonRaw("12.50"), "j_obj": map[string]any{"k": []any{1.0, "v"}},
		"k_time": time.Unix(0, 0).UTC().Format(time.RFC3339Nano)}
	cols := []column{{name: "a_int"}, {name: "b_i32"}, {name: "c_i16"}, {name: "d_bool"}, {name: "e_text"}, {name: "f_null"},
		{name: "g_float"}, {name: "h_bytes"}, {name: "i_num"}, {name: "j_obj"}}
	env := envelope{Before: nil, After: row, Op: "c", TsMs: 1733500000012, Source: envelopeSource{Version: "messagebus",
		Connector: "postgresql", Name: "n<1>", TsMs: 1733500000000, Snapshot: "false", DB: "db", Schema: "public", Table: "t", TxID: 761, LSN: 1 << 40}}
	want, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	// k_time is not in cols: written after them, still in place here.
	if got := appendEnvelope(nil, &env, cols); string(got) != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	key := appendKey(nil, row, []string{"d_bool", "a_int"})
	if string(key) != `{"a_int":-42,"d_bool":true}` {
		t.Fatalf("key %s", key)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\/<>&\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", "é€😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
