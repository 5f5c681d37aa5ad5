package schema

import (
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
)

func rec(fields ...string) string {
	return `{"type":"record","name":"R","fields":[` + strings.Join(fields, ",") + `]}`
}

func history(defs ...string) []meta.SchemaRecord {
	out := make([]meta.SchemaRecord, len(defs))
	for i, d := range defs {
		out[i] = meta.SchemaRecord{Version: int64(i), Type: string(Avro), Data: []byte(d)}
	}
	return out
}

func avroInfo(def string) Info { return Info{Type: Avro, Data: []byte(def)} }

var (
	fa        = `{"name":"a","type":"string"}`
	fbDefault = `{"name":"b","type":"int","default":1}`
	fbNoDef   = `{"name":"b","type":"int"}`
	fbLong    = `{"name":"b","type":"long","default":1}`
	faInt     = `{"name":"a","type":"int"}`
)

// TestCheckProducerTable: which changes each strategy accepts.
func TestCheckProducerTable(t *testing.T) {
	base := rec(fa, fbDefault)
	cases := []struct {
		name              string
		def               string
		backward, forward bool
	}{
		{"add field with default", rec(fa, fbDefault, `{"name":"c","type":"string","default":""}`), true, true},
		{"add field without default", rec(fa, fbDefault, `{"name":"c","type":"string"}`), false, true},
		{"remove field with default", rec(fa), true, true},
		{"remove field without default", rec(fbDefault), true, false},
		{"change field type", rec(faInt, fbDefault), false, false},
		{"promote int to long", rec(fa, fbLong), true, false},
		{"identical", base, true, true},
	}
	for _, c := range cases {
		want := map[Strategy]bool{
			Backward: c.backward, BackwardTransitive: c.backward, Forward: c.forward, ForwardTransitive: c.forward,
			Full: c.backward && c.forward, FullTransitive: c.backward && c.forward, AlwaysCompatible: true,
			AlwaysIncompatible: false, Undefined: c.backward && c.forward,
		}
		for st, ok := range want {
			err := CheckProducer(st, history(base), avroInfo(c.def))
			if ok != (err == nil) {
				t.Errorf("%s under %s: err %v, want accepted=%v", c.name, st, err, ok)
			}
			if err != nil && !IsIncompatible(err) {
				t.Errorf("%s under %s: %v is not an IncompatibleError", c.name, st, err)
			}
		}
	}
}

func TestCheckTransitive(t *testing.T) {
	// Each step is backward compatible with the previous one only.
	chain := history(rec(fa), rec(fa, fbDefault))
	next := avroInfo(rec(fa, fbNoDef))
	if err := CheckProducer(Backward, chain, next); err != nil {
		t.Fatalf("BACKWARD: %v", err)
	}
	err := CheckProducer(BackwardTransitive, chain, next)
	if err == nil || !strings.Contains(err.Error(), "against version 0") || !strings.Contains(err.Error(), "reader field b is missing") {
		t.Fatalf("BACKWARD_TRANSITIVE: %v", err)
	}
	if err := CheckProducer(Full, nil, next); err != nil {
		t.Fatalf("empty history: %v", err)
	}
}

func TestCheckTypes(t *testing.T) {
	h := []meta.SchemaRecord{{Version: 0, Type: string(String)}}
	if err := CheckProducer(Full, h, Info{Type: String}); err != nil {
		t.Fatalf("same primitive type: %v", err)
	}
	err := CheckProducer(Full, h, Info{Type: Int32})
	if err == nil || !strings.Contains(err.Error(), "from STRING (version 0) to INT32") {
		t.Fatalf("other primitive type: %v", err)
	}
	if err := CheckProducer(AlwaysCompatible, h, Info{Type: Int32}); err != nil {
		t.Fatalf("ALWAYS_COMPATIBLE: %v", err)
	}
	if err := CheckProducer(Full, []meta.SchemaRecord{{Type: string(Protobuf), Data: []byte("x")}}, Info{Type: Protobuf, Data: []byte("y")}); err != nil {
		t.Fatalf("PROTOBUF, same type: %v", err)
	}
	// JSON carries Avro definitions and is checked like AVRO.
	j := []meta.SchemaRecord{{Type: string(JSON), Data: []byte(rec(fa))}}
	if err := CheckProducer(Full, j, Info{Type: JSON, Data: []byte(rec(faInt))}); err == nil {
		t.Fatal("JSON field type change accepted")
	}
}

func TestCheckConsumer(t *testing.T) {
	h := history(rec(fa))
	if err := CheckConsumer(Full, h, avroInfo(rec(fa, fbDefault))); err != nil {
		t.Fatalf("reader with a defaulted extra field: %v", err)
	}
	if err := CheckConsumer(Full, h, avroInfo(rec(fa, fbNoDef))); err == nil {
		t.Fatal("reader needing a field the data lacks accepted")
	}
	if err := CheckConsumer(Forward, h, avroInfo(rec())); err != nil {
		t.Fatalf("reader dropping a field: %v", err)
	}
}

func TestValidateAndHash(t *testing.T) {
	if err := Validate(avroInfo(`{"type":"record"}`)); !IsInvalid(err) {
		t.Fatalf("record without name: %v", err)
	}
	if err := Validate(Info{Type: JSON, Data: []byte("nope")}); !IsInvalid(err) {
		t.Fatalf("JSON that is not JSON: %v", err)
	}
	if err := Validate(Info{Type: String}); err != nil {
		t.Fatal(err)
	}
	a := avroInfo(rec(fa, fbDefault))
	b := avroInfo(strings.ReplaceAll(rec(fa, fbDefault), ",", " ,\n "))
	if a.Hash() != b.Hash() {
		t.Fatal("the same definition written differently hashes differently")
	}
	if a.Hash() == avroInfo(rec(fa, fbNoDef)).Hash() {
		t.Fatal("definitions differing in a default hash the same")
	}
	if a.Hash() == (Info{Type: JSON, Data: a.Data}).Hash() {
		t.Fatal("AVRO and JSON of one definition hash the same")
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]Type{"avro": Avro, "PROTOBUF_NATIVE": ProtobufNative, "bytes": Bytes, " Int64 ": Int64} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v %v", in, got, err)
		}
	}
	if _, err := ParseType("XML"); err == nil || !strings.Contains(err.Error(), "AVRO") {
		t.Fatalf("unknown type: %v", err)
	}
	if st, err := ParseStrategy(`"backward_transitive"`); err != nil || st != BackwardTransitive {
		t.Fatalf("quoted strategy: %v %v", st, err)
	}
	if _, err := ParseStrategy("SIDEWAYS"); err == nil {
		t.Fatal("unknown strategy accepted")
	}
	for ty := range map[Type]bool{Avro: true, String: true, ProtobufNative: true, Int8: true} {
		if FromWire(ty.Wire()) != ty {
			t.Errorf("%s does not survive the wire", ty)
		}
	}
	if Bytes.Wire() != None.Wire() || !Bytes.IsBytes() {
		t.Error("BYTES is not None on the wire")
	}
	for _, v := range []int64{0, 1, 1 << 40} {
		if got, err := DecodeVersion(EncodeVersion(v)); err != nil || got != v {
			t.Errorf("version %d round trip: %d %v", v, got, err)
		}
	}
	if _, err := DecodeVersion([]byte{1}); err == nil {
		t.Error("1-byte version accepted")
	}
}

// FuzzSchemaDefinition: any definition of any type is validated, hashed
// and checked against an Avro history without panicking, and an accepted
// definition is compatible with itself.
func FuzzSchemaDefinition(f *testing.F) {
	f.Add("AVRO", rec(fa, fbDefault))
	f.Add("JSON", rec(fa))
	f.Add("AVRO", `{"type":"array","items":{"type":"map","values":"long"}}`)
	f.Add("AVRO", `{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`)
	f.Add("STRING", "")
	f.Add("PROTOBUF_NATIVE", `{"fileDescriptorSet":"","rootMessageTypeName":"x"}`)
	f.Fuzz(func(t *testing.T, typ, def string) {
		ty, err := ParseType(typ)
		if err != nil {
			return
		}
		info := Info{Type: ty, Data: []byte(def)}
		if Validate(info) != nil {
			return
		}
		_ = info.Hash()
		for _, st := range strategies {
			_ = CheckProducer(st, history(rec(fa, fbDefault)), info)
			_ = CheckConsumer(st, history(rec(fa)), info)
		}
		self := []meta.SchemaRecord{{Type: string(ty), Data: info.Data}}
		if err := CheckProducer(FullTransitive, self, info); err != nil {
			t.Fatalf("%s %q incompatible with itself: %v", ty, def, err)
		}
	})
}
