package lake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/jsonlite"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// Metadata columns of every file; payload fields with these names are left
// out.
const (
	colTopic       = "__topic"
	colKey         = "__key"
	colMessageID   = "__message_id"
	colPublishTime = "__publish_time"
	colProperties  = "__properties"
	colValue       = "__value"
)

// row is one message, its JSON object payload decoded.
type row struct {
	topic, key, messageID string
	publish               time.Time
	properties            map[string]string
	// fields is the payload when it is a JSON object; value otherwise.
	// Append mode parses into obj instead of fields (newAppendRow).
	fields map[string]any
	obj    *jsonlite.Value
	value  []byte
	// typed holds the typed columns' values of a message with a schema
	// (typed.go).
	typed map[string]parquet.Value
}

func newRow(topic, key, messageID string, publish time.Time, props map[string]string, payload []byte) row {
	r := row{topic: topic, key: key, messageID: messageID, publish: publish, properties: props}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var obj map[string]any
	if bytes.HasPrefix(bytes.TrimSpace(payload), []byte("{")) && d.Decode(&obj) == nil && !d.More() {
		r.fields = obj
	} else {
		r.value = payload
	}
	return r
}

// newAppendRow is newRow without a map per message: the payload is
// parsed with jsonlite (values point into one copy of the payload, nested
// objects left unparsed until a JSON column needs their text). Payloads
// it would read differently from encoding/json (invalid UTF-8, which
// encoding/json replaces; duplicate keys, of which encoding/json keeps the
// last) go through newRow, so the file is the same either way.
func newAppendRow(topic, key, messageID string, publish time.Time, props map[string]string, payload []byte) row {
	i := 0
	for i < len(payload) && (payload[i] == ' ' || payload[i] == '\t' || payload[i] == '\n' || payload[i] == '\r') {
		i++
	}
	if i == len(payload) || payload[i] != '{' {
		return row{topic: topic, key: key, messageID: messageID, publish: publish, properties: props, value: payload}
	}
	if utf8.Valid(payload) {
		if v, err := jsonlite.ParseMaxDepth(string(payload), 1); err == nil && v.Kind() == jsonlite.Object && !duplicateKeys(v) {
			return row{topic: topic, key: key, messageID: messageID, publish: publish, properties: props, obj: v}
		}
	}
	return newRow(topic, key, messageID, publish, props, payload)
}

func duplicateKeys(obj *jsonlite.Value) bool {
	for k, v := range obj.Object {
		if obj.Lookup(k) != v {
			return true
		}
	}
	return false
}

// kind is a payload column's inferred type.
type kind int

const (
	kindNone kind = iota
	kindBool
	kindInt
	kindDouble
	kindString
	kindJSON // mixed or nested values, kept as JSON text
)

func kindOf(v any) kind {
	switch x := v.(type) {
	case nil:
		return kindNone
	case bool:
		return kindBool
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return kindInt
		}
		return kindDouble
	case string:
		return kindString
	default:
		return kindJSON
	}
}

// kindOfLite is kindOf for a jsonlite value.
func kindOfLite(v *jsonlite.Value) kind {
	switch v.Kind() {
	case jsonlite.Null:
		return kindNone
	case jsonlite.True, jsonlite.False:
		return kindBool
	case jsonlite.Number:
		if _, err := strconv.ParseInt(v.JSON(), 10, 64); err == nil {
			return kindInt
		}
		return kindDouble
	case jsonlite.String:
		return kindString
	}
	return kindJSON
}

// merge widens a column's kind with one more value's.
func merge(a, b kind) kind {
	switch {
	case a == kindNone:
		return b
	case b == kindNone || a == b:
		return a
	case (a == kindInt && b == kindDouble) || (a == kindDouble && b == kindInt):
		return kindDouble
	default:
		return kindJSON
	}
}

func isMetadata(name string) bool {
	switch name {
	case colTopic, colKey, colMessageID, colPublishTime, colProperties, colValue:
		return true
	}
	return false
}

// encode writes rows as one Parquet file: the metadata columns and one
// column per payload field, its type vs's (when not nil) or inferred from
// the values in rows.
func encode(rows []row, vs *valueSchema, codec compress.Codec) ([]byte, error) {
	kinds := map[string]kind{}
	binaryValue := false
	for _, r := range rows {
		for k, v := range r.fields {
			if !isMetadata(k) {
				kinds[k] = merge(kinds[k], kindOf(v))
			}
		}
		if r.obj != nil {
			for k, v := range r.obj.Object {
				if !isMetadata(k) {
					kinds[k] = merge(kinds[k], kindOfLite(v))
				}
			}
		}
		if r.value != nil && !utf8.Valid(r.value) {
			binaryValue = true
		}
	}
	group := parquet.Group{
		colTopic:       parquet.String(),
		colMessageID:   parquet.String(),
		colPublishTime: parquet.Timestamp(parquet.Millisecond),
		colKey:         parquet.Optional(parquet.String()),
		colProperties:  parquet.Optional(parquet.JSON()),
		colValue:       parquet.Optional(parquet.String()),
	}
	if binaryValue {
		group[colValue] = parquet.Optional(parquet.Leaf(parquet.ByteArrayType))
	}
	if vs != nil {
		for _, c := range vs.cols {
			group[c.name] = c.node()
		}
	}
	for name, k := range kinds {
		var n parquet.Node
		switch k {
		case kindBool:
			n = parquet.Leaf(parquet.BooleanType)
		case kindInt:
			n = parquet.Leaf(parquet.Int64Type)
		case kindDouble:
			n = parquet.Leaf(parquet.DoubleType)
		case kindString, kindNone:
			n = parquet.String()
		default:
			n = parquet.JSON()
		}
		group[name] = parquet.Optional(n)
	}
	schema := parquet.NewSchema("message", group)
	cols := schema.Columns()
	var buf bytes.Buffer
	opts := []parquet.WriterOption{schema}
	if codec != nil {
		opts = append(opts, parquet.Compression(codec))
	}
	w := parquet.NewWriter(&buf, opts...)
	out := make([]parquet.Row, 0, len(rows))
	// One backing array for every row's values: fewer, larger allocations.
	vals := make([]parquet.Value, len(rows)*len(cols))
	// Consecutive messages mostly have the same topic and properties:
	// their column values are made once.
	var topicV, propsV parquet.Value
	names, colKinds := make([]string, len(cols)), make([]kind, len(cols))
	for i, path := range cols {
		names[i], colKinds[i] = path[0], kinds[path[0]]
	}
	for j, r := range rows {
		if j == 0 || r.topic != rows[j-1].topic {
			topicV = parquet.ByteArrayValue([]byte(r.topic))
		}
		if j == 0 || !maps.Equal(r.properties, rows[j-1].properties) {
			propsV, _ = r.column(colProperties, kindNone)
		}
		pr := parquet.Row(vals[j*len(cols) : (j+1)*len(cols) : (j+1)*len(cols)])
		for i, name := range names {
			var v parquet.Value
			var required bool
			switch name {
			case colTopic:
				v, required = topicV, true
			case colProperties:
				v = propsV
			default:
				v, required = r.column(name, colKinds[i])
			}
			switch {
			case required:
				pr[i] = v.Level(0, 0, i)
			case v.IsNull():
				pr[i] = parquet.NullValue().Level(0, 0, i)
			default:
				pr[i] = v.Level(0, 1, i)
			}
		}
		out = append(out, pr)
	}
	if _, err := w.WriteRows(out); err != nil {
		return nil, fmt.Errorf("parquet rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("parquet file: %w", err)
	}
	return buf.Bytes(), nil
}

// column returns r's value of a column and whether the column is required.
func (r *row) column(name string, k kind) (parquet.Value, bool) {
	switch name {
	case colTopic:
		return parquet.ByteArrayValue([]byte(r.topic)), true
	case colMessageID:
		return parquet.ByteArrayValue([]byte(r.messageID)), true
	case colPublishTime:
		return parquet.Int64Value(r.publish.UnixMilli()), true
	case colKey:
		if r.key == "" {
			return parquet.NullValue(), false
		}
		return parquet.ByteArrayValue([]byte(r.key)), false
	case colProperties:
		if len(r.properties) == 0 {
			return parquet.NullValue(), false
		}
		b, _ := json.Marshal(r.properties)
		return parquet.ByteArrayValue(b), false
	case colValue:
		if r.value == nil {
			return parquet.NullValue(), false
		}
		return parquet.ByteArrayValue(r.value), false
	}
	if r.typed != nil {
		if v, ok := r.typed[name]; ok {
			return v, false
		}
		return parquet.NullValue(), false
	}
	if r.obj != nil {
		return liteColumn(r.obj.Lookup(name), k)
	}
	v, ok := r.fields[name]
	if !ok || v == nil {
		return parquet.NullValue(), false
	}
	switch k {
	case kindBool:
		return parquet.BooleanValue(v.(bool)), false
	case kindInt:
		n, _ := v.(json.Number).Int64()
		return parquet.Int64Value(n), false
	case kindDouble:
		f, _ := v.(json.Number).Float64()
		return parquet.DoubleValue(f), false
	case kindString:
		return parquet.ByteArrayValue([]byte(v.(string))), false
	}
	b, _ := json.Marshal(v)
	return parquet.ByteArrayValue(b), false
}

// liteColumn is column's value of a payload field parsed by jsonlite,
// the same as for the field decoded by encoding/json.
func liteColumn(v *jsonlite.Value, k kind) (parquet.Value, bool) {
	if v == nil || v.Kind() == jsonlite.Null {
		return parquet.NullValue(), false
	}
	switch k {
	case kindBool:
		return parquet.BooleanValue(v.Kind() == jsonlite.True), false
	case kindInt:
		n, _ := strconv.ParseInt(v.JSON(), 10, 64)
		return parquet.Int64Value(n), false
	case kindDouble:
		f, _ := strconv.ParseFloat(v.JSON(), 64)
		return parquet.DoubleValue(f), false
	case kindString:
		s, _ := jsonlite.Unquote(v.JSON())
		return parquet.ByteArrayValue([]byte(s)), false
	}
	// A JSON column: the text json.Marshal gives the decoded value (a
	// string quoted and escaped, object keys sorted), as for newRow's rows.
	var x any
	switch v.Kind() {
	case jsonlite.Number, jsonlite.True, jsonlite.False:
		return parquet.ByteArrayValue([]byte(v.JSON())), false
	case jsonlite.String:
		s, _ := jsonlite.Unquote(v.JSON())
		x = s
	default:
		d := json.NewDecoder(strings.NewReader(v.JSON()))
		d.UseNumber()
		if d.Decode(&x) != nil {
			return parquet.ByteArrayValue([]byte(v.JSON())), false
		}
	}
	b, _ := json.Marshal(x)
	return parquet.ByteArrayValue(b), false
}

// partitionDir is a message's directory: the topic (without its
// persistent:// scheme and -partition-N suffix) and the publish hour.
func partitionDir(topic string, publish time.Time) string {
	t := publish.UTC()
	return fmt.Sprintf("%s/dt=%s/hour=%02d", topicDir(topic), t.Format("2006-01-02"), t.Hour())
}
