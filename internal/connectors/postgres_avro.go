package connectors

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// With valueSchema "avro" the envelope (the definition of
// postgres_schema.go, registered as an AVRO schema) is written in Avro's
// binary encoding by hand: record fields in order, a union as its branch
// index then the value, ints and longs zigzag varints, strings and bytes
// length-prefixed, floats and doubles little-endian. Values the definition
// calls string but that are not Go strings are written as their JSON
// text (bytea as base64, json/jsonb and arrays as JSON).

func appendAvroLong(b []byte, n int64) []byte {
	return binary.AppendVarint(b, n) // zigzag, as Avro's
}

func appendAvroString(b []byte, s string) []byte {
	b = appendAvroLong(b, int64(len(s)))
	return append(b, s...)
}

func appendAvroEnvelope(b []byte, env *envelope, cols []column) ([]byte, error) {
	var err error
	if b, err = appendAvroRow(b, env.Before, cols); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	if b, err = appendAvroRow(b, env.After, cols); err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	s := &env.Source
	b = appendAvroString(b, s.Version)
	b = appendAvroString(b, s.Connector)
	b = appendAvroString(b, s.Name)
	b = appendAvroLong(b, s.TsMs)
	b = appendAvroString(b, s.Snapshot)
	b = appendAvroString(b, s.DB)
	b = appendAvroString(b, s.Schema)
	b = appendAvroString(b, s.Table)
	b = appendAvroLong(b, int64(s.TxID))
	b = appendAvroLong(b, int64(s.LSN))
	b = appendAvroString(b, env.Op)
	return appendAvroLong(b, env.TsMs), nil
}

// appendAvroRow writes a ["null", Value] union: a row's columns in cols'
// order, each ["null", T]; a column the row lacks is null.
func appendAvroRow(b []byte, row map[string]any, cols []column) ([]byte, error) {
	if row == nil {
		return append(b, 0), nil // branch 0: null
	}
	b = append(b, 2) // branch 1 (zigzag)
	for _, c := range cols {
		v := row[c.name]
		if v == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 2)
		var err error
		if b, err = appendAvroValue(b, avroType(c.oid), v); err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
	}
	return b, nil
}

func appendAvroValue(b []byte, typ string, v any) ([]byte, error) {
	switch typ {
	case "boolean":
		if x, ok := v.(bool); ok {
			if x {
				return append(b, 1), nil
			}
			return append(b, 0), nil
		}
	case "int", "long":
		switch x := v.(type) {
		case int16:
			return appendAvroLong(b, int64(x)), nil
		case int32:
			return appendAvroLong(b, int64(x)), nil
		case int64:
			return appendAvroLong(b, x), nil
		case uint32:
			return appendAvroLong(b, int64(x)), nil
		case string: // an oid or xid decoded as text
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return appendAvroLong(b, n), nil
			}
		}
	case "float":
		switch x := v.(type) {
		case float32:
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(x)), nil
		case float64:
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x))), nil
		}
	case "double":
		var f float64
		var err error
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		case jsonRaw: // numeric; NaN and infinities come quoted
			f, err = strconv.ParseFloat(strings.Trim(string(x), `"`), 64)
		default:
			err = errAvroMismatch
		}
		if err == nil {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), nil
		}
	default: // string
		switch x := v.(type) {
		case string:
			return appendAvroString(b, x), nil
		case []byte:
			return appendAvroString(b, base64.StdEncoding.EncodeToString(x)), nil
		case jsonRaw:
			return appendAvroString(b, string(x)), nil
		}
		js, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return appendAvroString(b, string(js)), nil
	}
	return nil, fmt.Errorf("%w: a %T for Avro %s", errAvroMismatch, v, typ)
}

var errAvroMismatch = errors.New("value does not fit the schema")
