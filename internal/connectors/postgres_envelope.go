package connectors

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
)

// change is one row change (or a snapshot row, op "r").
type change struct {
	schema, table string
	op            string
	before, after map[string]any
	keys          []string
	cols          []column // the table's, for the schema
	lsn           pglogrepl.LSN
	xid           uint32
	commit        time.Time
	snapshot      string
}

type envelopeSource struct {
	Version   string `json:"version"`
	Connector string `json:"connector"`
	Name      string `json:"name"`
	TsMs      int64  `json:"ts_ms"`
	Snapshot  string `json:"snapshot"`
	DB        string `json:"db"`
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	TxID      uint32 `json:"txId"`
	LSN       uint64 `json:"lsn"`
}

type envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source envelopeSource `json:"source"`
	Op     string         `json:"op"`
	TsMs   int64          `json:"ts_ms"`
}

// appendRecords appends to dst the records a change becomes: a
// Debezium-style envelope on the table's topic, or, for the outbox table,
// the routed payload (its deletes and updates are not sent).
func (p *pgSource) appendRecords(dst []*Record, ch *change) ([]*Record, error) {
	if o := p.s.Outbox; o != nil && o.Table == ch.schema+"."+ch.table {
		if ch.op != "c" && ch.op != "r" {
			return dst, nil
		}
		route := fmt.Sprint(ch.after[o.RouteColumn])
		rec := &Record{Topic: strings.ReplaceAll(o.TopicPattern, "{route}", route),
			Properties: map[string]string{"outbox.table": o.Table}}
		if o.KeyColumn != "" && ch.after[o.KeyColumn] != nil {
			rec.Key = fmt.Sprint(ch.after[o.KeyColumn])
		}
		switch v := ch.after[o.PayloadColumn].(type) {
		case string:
			rec.Value = []byte(v)
		case []byte:
			rec.Value = v
		default:
			rec.Value, _ = json.Marshal(v)
		}
		return append(dst, rec), nil
	}
	env := envelope{Before: ch.before, After: ch.after, Op: ch.op, TsMs: time.Now().UnixMilli(),
		Source: envelopeSource{Version: "messagebus", Connector: "postgresql", Name: p.env.Name, TsMs: ch.commit.UnixMilli(),
			Snapshot: ch.snapshot, DB: p.db, Schema: ch.schema, Table: ch.table, TxID: ch.xid, LSN: uint64(ch.lsn)}}
	if ch.commit.IsZero() {
		env.Source.TsMs = env.TsMs
	}
	var value []byte
	if p.s.ValueSchema == "avro" {
		var err error
		if value, err = appendAvroEnvelope(make([]byte, 0, 256), &env, ch.cols); err != nil {
			return dst, fmt.Errorf("avro envelope of %s.%s: %w", ch.schema, ch.table, err)
		}
	} else {
		value = appendEnvelope(make([]byte, 0, 256), &env, ch.cols)
	}
	rec := &Record{Topic: p.topic(ch.schema, ch.table), Value: value,
		Properties: map[string]string{"op": ch.op, "lsn": lsnNumber(ch.lsn)}}
	if len(ch.keys) > 0 {
		row := ch.after
		if row == nil {
			row = ch.before
		}
		rec.Key = string(appendKey(make([]byte, 0, 32), row, ch.keys))
	}
	if p.s.ValueSchema != "none" {
		sc, err := p.schemas.envelope(p.db, ch.schema, ch.table, ch.cols)
		if err != nil {
			return dst, err
		}
		rec.Schema = sc
	}
	return append(dst, rec), nil
}

// topic is a table's topic, cached: building a Replacer per row cost as
// much as the envelope's JSON.
func (p *pgSource) topic(schema, table string) string {
	k := tableKey{schema, table}
	if t, ok := p.topics[k]; ok {
		return t
	}
	t := strings.NewReplacer("{tenant}", p.env.Tenant, "{namespace}", p.env.Namespace, "{database}", p.db,
		"{schema}", schema, "{table}", table).Replace(p.s.TopicPattern)
	if p.topics == nil {
		p.topics = map[tableKey]string{}
	}
	p.topics[k] = t
	return t
}

type tableKey struct{ schema, table string }
