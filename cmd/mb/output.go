package main

// Output of `mb admin`: --output json prints the server's JSON as received
// (indented); --output table prints aligned columns in a stable order.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

const (
	outputTable = "table"
	outputJSON  = "json"
)

// printer writes command results in the chosen format.
type printer struct {
	w    io.Writer
	json bool
}

// list prints names one per line, sorted, or as a JSON array.
func (p *printer) list(raw []byte, items []string) error {
	if p.json {
		return p.rawJSON(raw, items)
	}
	sorted := append([]string(nil), items...)
	sort.Strings(sorted)
	for _, it := range sorted {
		if _, err := fmt.Fprintln(p.w, it); err != nil {
			return err
		}
	}
	return nil
}

// table prints rows under a header, aligned; rows are printed in the given order.
func (p *printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// object prints the server's JSON: as is for --output json, flattened into
// sorted KEY VALUE rows for tables. fallback is encoded when the server sent
// no body (older servers answer some GETs with 204).
func (p *printer) object(raw []byte, fallback any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		b, err := json.Marshal(fallback)
		if err != nil {
			return err
		}
		raw = b
	}
	if p.json {
		return p.rawJSON(raw, nil)
	}
	v, err := decodeJSON(raw)
	if err != nil {
		// Not JSON: show what the server said.
		_, err := fmt.Fprintln(p.w, strings.TrimSpace(string(raw)))
		return err
	}
	switch x := v.(type) {
	case []any:
		if allScalars(x) {
			for _, e := range x {
				if _, err := fmt.Fprintln(p.w, scalar(e)); err != nil {
					return err
				}
			}
			return nil
		}
		return p.table(nil, flatten(v))
	case map[string]any:
		return p.table(nil, flatten(v))
	default:
		_, err := fmt.Fprintln(p.w, scalar(v))
		return err
	}
}

// rawJSON prints raw indented, or v encoded when raw is empty.
func (p *printer) rawJSON(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		if v == nil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		// Not JSON after all: pass it through untouched.
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err := p.w.Write(buf.Bytes())
	return err
}

// value prints a JSON-encodable value we built ourselves (not a server body).
func (p *printer) value(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.rawJSON(b, nil)
}

func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep ledger ids and sizes exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// flatten turns nested JSON into [key, value] rows sorted by key: objects
// join keys with '.', arrays of scalars become comma-separated values,
// arrays of objects are indexed (publishers.0.msgRateIn).
func flatten(v any) [][]string {
	var rows [][]string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 && prefix != "" {
				rows = append(rows, []string{prefix, "{}"})
				return
			}
			for k, child := range x {
				walk(joinKey(prefix, k), child)
			}
		case []any:
			if allScalars(x) {
				parts := make([]string, len(x))
				for i, e := range x {
					parts[i] = scalar(e)
				}
				val := strings.Join(parts, ",")
				if len(x) == 0 {
					val = "[]"
				}
				rows = append(rows, []string{prefix, val})
				return
			}
			for i, child := range x {
				walk(joinKey(prefix, fmt.Sprint(i)), child)
			}
		default:
			rows = append(rows, []string{prefix, scalar(x)})
		}
	}
	walk("", v)
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func allScalars(xs []any) bool {
	for _, x := range xs {
		switch x.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}
