package connectors

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The envelope is written by hand rather than with encoding/json: its
// maps cost a reflection walk and a key sort per row, which was a third of
// the capture's own time per change. A row's columns come in the table's
// order; values of the common types are appended directly, others through
// encoding/json. The output is what encoding/json would write (strings
// escaped the same way), but for the column order.

func appendEnvelope(b []byte, env *envelope, cols []column) []byte {
	b = append(b, `{"before":`...)
	b = appendRow(b, env.Before, cols)
	b = append(b, `,"after":`...)
	b = appendRow(b, env.After, cols)
	s := &env.Source
	b = append(b, `,"source":{"version":`...)
	b = appendJSONString(b, s.Version)
	b = append(b, `,"connector":`...)
	b = appendJSONString(b, s.Connector)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, s.TsMs, 10)
	b = append(b, `,"snapshot":`...)
	b = appendJSONString(b, s.Snapshot)
	b = append(b, `,"db":`...)
	b = appendJSONString(b, s.DB)
	b = append(b, `,"schema":`...)
	b = appendJSONString(b, s.Schema)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, s.Table)
	b = append(b, `,"txId":`...)
	b = strconv.AppendUint(b, uint64(s.TxID), 10)
	b = append(b, `,"lsn":`...)
	b = strconv.AppendUint(b, s.LSN, 10)
	b = append(b, `},"op":`...)
	b = appendJSONString(b, env.Op)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, env.TsMs, 10)
	return append(b, '}')
}

// appendRow writes row's columns in cols' order, then any others.
func appendRow(b []byte, row map[string]any, cols []column) []byte {
	if row == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	n := 0
	field := func(name string, v any) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONValue(b, v)
	}
	for _, c := range cols {
		if v, ok := row[c.name]; ok {
			field(c.name, v)
		}
	}
	if n < len(row) {
		// Columns the column list does not name (none in practice).
		seen := make(map[string]bool, len(cols))
		for _, c := range cols {
			seen[c.name] = true
		}
		for k, v := range row {
			if !seen[k] {
				field(k, v)
			}
		}
	}
	return append(b, '}')
}

func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int16:
		return strconv.AppendInt(b, int64(x), 10)
	case bool:
		return strconv.AppendBool(b, x)
	}
	js, err := json.Marshal(v)
	if err != nil {
		// NaN, infinities: JSON has no number for them.
		return appendJSONString(b, fmtAny(v))
	}
	return append(b, js...)
}

func fmtAny(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	if f, ok := v.(float32); ok {
		return strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return "?"
}

// appendKey writes the key columns' values of row as a JSON object, its
// names sorted (as encoding/json sorts a map's).
func appendKey(b []byte, row map[string]any, keys []string) []byte {
	if len(keys) > 1 && !slices.IsSorted(keys) {
		keys = slices.Sorted(slices.Values(keys))
	}
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONValue(b, row[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does (HTML-safe, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
