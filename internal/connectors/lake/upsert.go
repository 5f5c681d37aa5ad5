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
	dir     string // the topic's directory
	rows    map[string]*upsertRow
	pending []pulsar.Message
	bytes   int64
	opened  time.Time
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
func loadTable(ctx context.Context, store objstore.Store, prefix, dir string) (*upsertTable, error) {
	t := &upsertTable{dir: dir, rows: map[string]*upsertRow{}}
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

// apply puts one message into the table.
func (t *upsertTable) apply(m pulsar.Message) {
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
func (t *upsertTable) write(ctx context.Context, k *sink, store objstore.Store) (int, error) {
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
	data, err := encode(rows, k.codec())
	if err != nil {
		return 0, err
	}
	state, err := json.Marshal(t.rows)
	if err != nil {
		return 0, err
	}
	for _, obj := range []struct {
		key  string
		data []byte
	}{{t.dataKey(k.s.Prefix), data}, {t.stateKey(k.s.Prefix), state}} {
		pctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		err := store.Put(pctx, obj.key, obj.data, false)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("lake put %s: %w", obj.key, err)
		}
	}
	return len(data), nil
}

// runUpsert is Run in upsert mode.
func (k *sink) runUpsert(ctx context.Context, env *connectors.SinkEnv, store objstore.Store) error {
	if env.Parallelism > 1 {
		return errors.New("lake upsert mode runs one instance (parallelism 1): each topic's table is written by one writer")
	}
	roll := time.Duration(k.s.RollIntervalMs) * time.Millisecond
	tick := time.NewTicker(max(roll/4, 50*time.Millisecond))
	defer tick.Stop()
	tables := map[string]*upsertTable{}
	flush := func(t *upsertTable) error {
		n, err := t.write(ctx, k, store)
		if err != nil {
			env.WriteFailed(err)
			return err
		}
		env.Log.Debug("lake table written", "topic", t.dir, "rows", len(t.rows), "bytes", n)
		for _, m := range t.pending {
			env.Ack(m)
		}
		t.pending, t.bytes = nil, 0
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-env.Messages:
			dir := topicDir(m.Topic())
			t := tables[dir]
			if t == nil {
				var err error
				if t, err = loadTable(ctx, store, k.s.Prefix, dir); err != nil {
					return err
				}
				tables[dir] = t
			}
			if len(t.pending) == 0 {
				t.opened = time.Now()
			}
			t.apply(m)
			t.pending = append(t.pending, m)
			t.bytes += int64(len(m.Payload()))
			if t.bytes >= k.s.RollSizeBytes {
				if err := flush(t); err != nil {
					return err
				}
			}
		case now := <-tick.C:
			for _, t := range tables {
				if len(t.pending) > 0 && now.Sub(t.opened) >= roll {
					if err := flush(t); err != nil {
						return err
					}
				}
			}
		}
	}
}
