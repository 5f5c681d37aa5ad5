package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/hamba/avro/v2"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/parquet-go/parquet-go"
)

// Messages written with an AVRO or JSON schema from the registry get
// columns typed from the schema's record fields instead of types inferred
// from the values; a file holds the messages of one schema version.

// colType is how a schema field becomes a Parquet column.
type colType int

const (
	cBool colType = iota
	cInt32
	cInt64
	cFloat
	cDouble
	cString
	cBytes
	cDate            // int date: days since the epoch
	cTimestampMillis // long timestamp-millis (and local-)
	cTimestampMicros // long timestamp-micros (and local-)
	cJSON            // records, arrays, maps, unions of several types: JSON text
)

type typedCol struct {
	name string
	typ  colType
	s    avro.Schema // the field's type, as declared (unions included)
}

// valueSchema is one schema version of a topic whose messages get typed
// columns.
type valueSchema struct {
	id     string // names the batch: topic directory and version
	json   bool   // payloads are JSON text (type JSON), else Avro binary
	record *avro.RecordSchema
	cols   []typedCol
}

// newValueSchema reads an AVRO or JSON schema's record definition; nil
// for other types (their messages keep inferred columns).
func newValueSchema(id string, ts connectors.TopicSchema) (*valueSchema, error) {
	if ts.Type != "AVRO" && ts.Type != "JSON" {
		return nil, nil
	}
	s, err := schema.ParseAvro(ts.Definition)
	if err != nil {
		return nil, fmt.Errorf("lake: %s schema %s: %w", ts.Type, id, err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, nil // not a record: no columns to type
	}
	vs := &valueSchema{id: id, json: ts.Type == "JSON", record: rec}
	for _, f := range rec.Fields() {
		if isMetadata(f.Name()) {
			continue
		}
		vs.cols = append(vs.cols, typedCol{name: f.Name(), typ: columnType(f.Type()), s: f.Type()})
	}
	return vs, nil
}

// nonNull is s without the null branch of a ["null", T] union.
func nonNull(s avro.Schema) avro.Schema {
	if u, ok := s.(*avro.UnionSchema); ok && u.Nullable() {
		_, i := u.Indices()
		return u.Types()[i]
	}
	return s
}

func columnType(s avro.Schema) colType {
	s = nonNull(s)
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
	}
	switch s.Type() {
	case avro.Boolean:
		return cBool
	case avro.Int:
		if logical == avro.Date {
			return cDate
		}
		return cInt32
	case avro.Long:
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return cTimestampMillis
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return cTimestampMicros
		}
		return cInt64
	case avro.Float:
		return cFloat
	case avro.Double:
		return cDouble
	case avro.String, avro.Enum:
		return cString
	case avro.Bytes, avro.Fixed:
		if logical == "" {
			return cBytes
		}
	}
	return cJSON
}

func (c typedCol) node() parquet.Node {
	var n parquet.Node
	switch c.typ {
	case cBool:
		n = parquet.Leaf(parquet.BooleanType)
	case cInt32:
		n = parquet.Int(32)
	case cInt64:
		n = parquet.Int(64)
	case cFloat:
		n = parquet.Leaf(parquet.FloatType)
	case cDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case cString:
		n = parquet.String()
	case cBytes:
		n = parquet.Leaf(parquet.ByteArrayType)
	case cDate:
		n = parquet.Date()
	case cTimestampMillis:
		n = parquet.Timestamp(parquet.Millisecond)
	case cTimestampMicros:
		n = parquet.Timestamp(parquet.Microsecond)
	default:
		n = parquet.JSON()
	}
	return parquet.Optional(n)
}

var errMismatch = errors.New("value does not fit the column")

// decode reads a payload into its record's fields.
func (vs *valueSchema) decode(payload []byte) (map[string]any, error) {
	var m map[string]any
	if vs.json {
		d := json.NewDecoder(bytes.NewReader(payload))
		d.UseNumber()
		if err := d.Decode(&m); err != nil || d.More() {
			return nil, errMismatch
		}
		return m, nil
	}
	if err := avro.Unmarshal(vs.record, payload, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// values converts a payload to the typed columns' values; an error when
// it does not decode or a field does not fit its column.
func (vs *valueSchema) values(payload []byte) (map[string]parquet.Value, error) {
	m, err := vs.decode(payload)
	if err != nil {
		return nil, err
	}
	out := make(map[string]parquet.Value, len(vs.cols))
	for _, c := range vs.cols {
		v, ok := m[c.name]
		if !ok || v == nil {
			continue
		}
		pv, err := c.value(v, vs.json)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", c.name, err)
		}
		out[c.name] = pv
	}
	return out, nil
}

func (c typedCol) value(v any, isJSON bool) (parquet.Value, error) {
	if !isJSON && c.typ != cJSON {
		v = unwrapUnion(v)
	}
	switch c.typ {
	case cBool:
		if b, ok := v.(bool); ok {
			return parquet.BooleanValue(b), nil
		}
	case cInt32, cDate:
		if t, ok := v.(time.Time); ok {
			return parquet.Int32Value(int32(t.Unix() / 86400)), nil
		}
		if n, ok := asInt(v); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			return parquet.Int32Value(int32(n)), nil
		}
	case cInt64, cTimestampMillis, cTimestampMicros:
		if t, ok := v.(time.Time); ok {
			if c.typ == cTimestampMicros {
				return parquet.Int64Value(t.UnixMicro()), nil
			}
			return parquet.Int64Value(t.UnixMilli()), nil
		}
		if n, ok := asInt(v); ok {
			return parquet.Int64Value(n), nil
		}
	case cFloat, cDouble:
		f, ok := asFloat(v)
		if ok && c.typ == cFloat {
			return parquet.FloatValue(float32(f)), nil
		}
		if ok {
			return parquet.DoubleValue(f), nil
		}
	case cString:
		if s, ok := v.(string); ok {
			return parquet.ByteArrayValue([]byte(s)), nil
		}
	case cBytes:
		switch b := v.(type) {
		case []byte:
			return parquet.ByteArrayValue(b), nil
		case string:
			return parquet.ByteArrayValue([]byte(b)), nil
		}
	default:
		if !isJSON {
			v = plain(c.s, v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return parquet.Value{}, err
		}
		return parquet.ByteArrayValue(b), nil
	}
	return parquet.Value{}, fmt.Errorf("%w: %T", errMismatch, v)
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case time.Duration:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// unwrapUnion takes the value out of the {"<type name>": value} map that
// generic Avro decoding makes of a union branch it cannot name a Go type
// for (records, enums, fixed).
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, x := range m {
			return x
		}
	}
	return v
}

// plain turns a generically decoded Avro value into what its JSON text
// should be: union wrappers removed, records and maps as objects.
func plain(s avro.Schema, v any) any {
	if v == nil {
		return nil
	}
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	switch s := s.(type) {
	case *avro.UnionSchema:
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for name, x := range m {
				for _, t := range s.Types() {
					if unionName(t) == name {
						return plain(t, x)
					}
				}
			}
		}
		if s.Nullable() {
			return plain(nonNull(s), v)
		}
		return v
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for _, f := range s.Fields() {
			if x, ok := m[f.Name()]; ok {
				out[f.Name()] = plain(f.Type(), x)
			}
		}
		return out
	case *avro.ArraySchema:
		a, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(a))
		for i, x := range a {
			out[i] = plain(s.Items(), x)
		}
		return out
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[k] = plain(s.Values(), x)
		}
		return out
	}
	return v
}

// unionName is the key generic decoding gives a union branch.
func unionName(s avro.Schema) string {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		name += "." + string(l.Logical().Type())
	}
	return name
}

// schemas caches the value schemas of the messages a session sees.
type schemas struct {
	env   *connectors.SinkEnv
	known map[string]*valueSchema // by topic directory + "@" + version; nil: untyped
}

// of returns the value schema m was written with; nil when it has none
// that types columns.
func (c *schemas) of(ctx context.Context, m pulsar.Message) (*valueSchema, error) {
	v := m.SchemaVersion()
	if len(v) == 0 {
		return nil, nil
	}
	id := fmt.Sprintf("%s@%x", topicDir(m.Topic()), v)
	if vs, ok := c.known[id]; ok {
		return vs, nil
	}
	ts, err := c.env.Schema(ctx, m.Topic(), v)
	if errors.Is(err, connectors.ErrNoRegistry) {
		c.known[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake: schema of %s: %w", m.Topic(), err)
	}
	vs, err := newValueSchema(id, ts)
	if err != nil {
		return nil, err
	}
	c.known[id] = vs
	return vs, nil
}

// cached is the value schema of m that of returned before.
func (c *schemas) cached(m pulsar.Message) *valueSchema {
	v := m.SchemaVersion()
	if len(v) == 0 {
		return nil
	}
	return c.known[fmt.Sprintf("%s@%x", topicDir(m.Topic()), v)]
}

// batchKey names a message's file: its partition directory and, when it
// has typed columns, its schema version.
func batchKey(dir string, vs *valueSchema) string {
	if vs == nil {
		return dir
	}
	return dir + "\x00" + vs.id[strings.LastIndexByte(vs.id, '@')+1:]
}
