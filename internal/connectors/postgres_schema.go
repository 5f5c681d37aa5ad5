package connectors

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
)

// With valueSchema "json" every table topic's envelopes carry a JSON
// schema (an Avro record definition, as Pulsar's JSON schemas are) made
// from the table's columns; the producer registers it in the schema
// registry with the first envelope of each column set, so a table whose
// columns change gets a new schema version. Every column is nullable with
// default null, so adding or dropping a column is compatible under every
// strategy; changing a column's type may be refused by the namespace's
// strategy, and the send then fails with the registry's error.

// column is a table column as the schema describes it.
type column struct {
	name string
	oid  uint32
}

// avroType is the Avro type a Postgres type's JSON value has.
func avroType(oid uint32) string {
	switch oid {
	case 16: // bool
		return "boolean"
	case 21, 23: // int2, int4
		return "int"
	case 20, 26, 28: // int8, oid, xid
		return "long"
	case 700: // float4
		return "float"
	case 701, 1700: // float8, numeric (a JSON number)
		return "double"
	}
	// Text, dates and times (RFC 3339), uuid, bytea (base64) and the rest;
	// json, jsonb and arrays are described as string too.
	return "string"
}

// avroName makes a Postgres identifier an Avro name ([A-Za-z_][A-Za-z0-9_]*).
func avroName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

type avroField struct {
	Name    string `json:"name"`
	Type    any    `json:"type"`
	Default any    `json:"default,omitempty"`
}

type avroRecord struct {
	Type      string      `json:"type"`
	Name      string      `json:"name"`
	Namespace string      `json:"namespace,omitempty"`
	Fields    []avroField `json:"fields"`
}

// nullDefault marks a field whose default is null (omitempty would drop a nil).
type nullDefault struct{}

func (nullDefault) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// envelopeSchemaDef is the Avro definition of a table's envelope.
func envelopeSchemaDef(db, schema, table string, cols []column) string {
	ns := avroName(db) + "." + avroName(schema) + "." + avroName(table)
	row := avroRecord{Type: "record", Name: "Value", Namespace: ns}
	for _, c := range cols {
		row.Fields = append(row.Fields, avroField{Name: avroName(c.name), Type: []any{"null", avroType(c.oid)}, Default: nullDefault{}})
	}
	str := func(n string) avroField { return avroField{Name: n, Type: "string"} }
	long := func(n string) avroField { return avroField{Name: n, Type: "long"} }
	src := avroRecord{Type: "record", Name: "Source", Namespace: "io.messagebus.connector.postgresql", Fields: []avroField{
		str("version"), str("connector"), str("name"), long("ts_ms"), str("snapshot"), str("db"), str("schema"), str("table"),
		long("txId"), long("lsn")}}
	env := avroRecord{Type: "record", Name: "Envelope", Namespace: ns, Fields: []avroField{
		{Name: "before", Type: []any{"null", row}, Default: nullDefault{}},
		{Name: "after", Type: []any{"null", ns + ".Value"}, Default: nullDefault{}},
		{Name: "source", Type: src},
		str("op"), long("ts_ms")}}
	b, _ := json.Marshal(env)
	return string(b)
}

// schemas caches the envelope schema of each table's column set, found
// first by the column slice (made once per relation message or snapshot
// table), then by the columns' names and types.
type schemas struct {
	avro    bool // AVRO schemas, else JSON
	bySlice map[*column]pulsar.Schema
	byCols  map[string]pulsar.Schema
}

func (s *schemas) envelope(db, schema, table string, cols []column) (pulsar.Schema, error) {
	if len(cols) > 0 {
		if sc, ok := s.bySlice[&cols[0]]; ok {
			return sc, nil
		}
	}
	var k strings.Builder
	k.WriteString(schema + "." + table)
	for _, c := range cols {
		fmt.Fprintf(&k, "\x00%s:%d", c.name, c.oid)
	}
	sc, ok := s.byCols[k.String()]
	if !ok {
		def := envelopeSchemaDef(db, schema, table, cols)
		var err error
		if s.avro {
			sc, err = pulsar.NewAvroSchemaWithValidation(def, nil)
		} else {
			sc, err = pulsar.NewJSONSchemaWithValidation(def, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("envelope schema of %s.%s: %w", schema, table, err)
		}
		if s.byCols == nil {
			s.byCols = map[string]pulsar.Schema{}
		}
		s.byCols[k.String()] = sc
	}
	if len(cols) > 0 {
		if s.bySlice == nil || len(s.bySlice) > 10000 {
			s.bySlice = map[*column]pulsar.Schema{}
		}
		s.bySlice[&cols[0]] = sc
	}
	return sc, nil
}
