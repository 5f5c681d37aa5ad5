package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/objstore"
)

// In upsert mode a topic is one table of its latest row per key: a
// Debezium-style envelope (op c/u/r) puts its after image under the
// message key, op d and an empty payload (a tombstone) remove the key, op
// t empties the table; any other payload is the key's row. On each roll
// the whole table is written again as <topic>/latest.parquet (one PUT:
// readers see the old or the new table), then its state (the rows as
// JSON, read back when a session starts) as <topic>/_upsert/state.json,
// and only then are the messages acknowledged. Applying a message again
// gives the same table, so redeliveries after a crash are harmless.

// upsertRow is a row as the state object keeps it.
type upsertRow struct {
	Topic     string            `json:"topic"`
	Key       string            `json:"key,omitempty"`
	MessageID string            `json:"messageId"`
	Publish   int64             `json:"publishMs"`
	Props     map[string]string `json:"properties,omitempty"`
	Fields    map[string]any    `json:"fields,omitempty"`
	Value     []byte            `json:"value,omitempty"`
}

// upsertTable is one topic's table.
type upsertTable struct {
	k     *sink
	env   *connectors.SinkEnv
	store objstore.Store
	sc    *schemas
	dir   string // the topic's directory
	rows  map[string]*upsertRow
}

func (t *upsertTable) stateKey(prefix string) string { return prefix + t.dir + "/_upsert/state.json" }
func (t *upsertTable) dataKey(prefix string) string  { return prefix + t.dir + "/latest.parquet" }

// topicDir is a topic's directory: without its scheme and -partition-N.
func topicDir(topic string) string {
	if i := strings.Index(topic, "://"); i >= 0 {
		topic = topic[i+3:]
	}
	if i := strings.LastIndex(topic, "-partition-"); i > 0 {
		topic = topic[:i]
	}
	return topic
}

// loadTable reads a topic's state (an empty table when it has none).
func loadTable(ctx context.Context, k *sink, env *connectors.SinkEnv, store objstore.Store, sc *schemas, dir string) (*upsertTable, error) {
	prefix := k.s.Prefix
	t := &upsertTable{k: k, env: env, store: store, sc: sc, dir: dir, rows: map[string]*upsertRow{}}
	gctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	defer cancel()
	b, err := store.Get(gctx, t.stateKey(prefix), 0, -1)
	if errors.Is(err, objstore.ErrNotFound) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake upsert state of %s: %w", dir, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&t.rows); err != nil {
		return nil, fmt.Errorf("lake upsert state of %s: %w", dir, err)
	}
	return t, nil
}

// add puts one message into the table.
func (t *upsertTable) add(m pulsar.Message) {
	id := messageID(m.ID())
	key := m.Key()
	if key == "" {
		key = "\x00" + id // no key: a row of its own
	}
	payload := m.Payload()
	if len(payload) == 0 {
		delete(t.rows, key)
		return
	}
	if vs := t.sc.cached(m); vs != nil && !vs.json {
		// An Avro payload (such as the postgres source's avro envelopes)
		// becomes its JSON form, so envelopes are recognised.
		if v, err := vs.decode(payload); err == nil {
			if b, err := json.Marshal(plain(vs.record, v)); err == nil {
				payload = b
			}
		}
	}
	r := newRow(m.Topic(), m.Key(), id, m.PublishTime(), m.Properties(), payload)
	if op, ok := r.fields["op"].(string); ok && r.fields["source"] != nil {
		switch op {
		case "d":
			delete(t.rows, key)
			return
		case "t":
			clear(t.rows)
			return
		}
		after, _ := r.fields["after"].(map[string]any)
		r.fields = after
	}
	t.rows[key] = &upsertRow{Topic: r.topic, Key: r.key, MessageID: r.messageID, Publish: r.publish.UnixMilli(),
		Props: r.properties, Fields: r.fields, Value: r.value}
}

// write stores the table and its state.
func (t *upsertTable) write(ctx context.Context) error {
	k, store := t.k, t.store
	keys := make([]string, 0, len(t.rows))
	for key := range t.rows {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	rows := make([]row, len(keys))
	for i, key := range keys {
		u := t.rows[key]
		rows[i] = row{topic: u.Topic, key: u.Key, messageID: u.MessageID, publish: time.UnixMilli(u.Publish),
			properties: u.Props, fields: u.Fields, value: u.Value}
		if u.Fields == nil && u.Value == nil {
			rows[i].fields = map[string]any{}
		}
	}
	data, err := encode(rows, nil, k.codec())
	if err != nil {
		return err
	}
	state, err := json.Marshal(t.rows)
	if err != nil {
		return err
	}
	for _, obj := range []struct {
		key  string
		data []byte
	}{{t.dataKey(k.s.Prefix), data}, {t.stateKey(k.s.Prefix), state}} {
		pctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		err := store.Put(pctx, obj.key, obj.data, false)
		cancel()
		if err != nil {
			return fmt.Errorf("lake put %s: %w", obj.key, err)
		}
	}
	t.env.Log.Debug("lake table written", "topic", t.dir, "rows", len(t.rows), "bytes", len(data))
	return nil
}

// runUpsert is Run in upsert mode.
func (k *sink) runUpsert(ctx context.Context, env *connectors.SinkEnv, store objstore.Store) error {
	if env.Parallelism > 1 {
		return errors.New("lake upsert mode runs one instance (parallelism 1): each topic's table is written by one writer")
	}
	sc := &schemas{env: env, known: map[string]*valueSchema{}}
	return k.rollLoop(ctx, env, true,
		func(ctx context.Context, m pulsar.Message) (string, error) {
			_, err := sc.of(ctx, m) // read here, used by add
			return topicDir(m.Topic()), err
		},
		func(ctx context.Context, dir string, _ pulsar.Message, _ int) (batch, error) {
			return loadTable(ctx, k, env, store, sc, dir)
		})
}
