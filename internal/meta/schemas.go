package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/messagebus/messagebus/internal/naming"
)

// schemasPrefix holds the schema versions of topics, one record per
// version: /schemas/{tenant}/{ns}/{domain}/{topic}/{version, 20 digits}.
// A partitioned topic's partitions share the partitioned topic's records,
// as in Pulsar (whose schema id is the topic name without -partition-N).
const schemasPrefix = "/schemas/"

// SchemaRecord is one stored schema version of a topic.
type SchemaRecord struct {
	Version    int64             `json:"version"` // 0, 1, ... per topic
	Type       string            `json:"type"`    // Pulsar's name: AVRO, JSON, STRING, ...
	Data       []byte            `json:"data"`
	Properties map[string]string `json:"properties,omitempty"`
	Timestamp  int64             `json:"timestamp"` // ms since the epoch
	// Hash identifies the type, data and properties, so that registering
	// the same schema again finds its version.
	Hash string `json:"hash"`
	// Deleted marks a deletion: versions before it stay readable by
	// number, but the topic has no schema until a later version.
	Deleted bool `json:"deleted,omitempty"`
}

func schemasKey(t naming.Topic) string {
	t = t.Partitioned()
	return schemasPrefix + t.Namespace.String() + "/" + t.Domain + "/" + t.Local + "/"
}

func schemaVersionKey(t naming.Topic, v int64) string {
	return fmt.Sprintf("%s%020d", schemasKey(t), v)
}

// SchemaVersions returns every stored version of t's schema, oldest first
// (deletion markers included).
func (r *Resources) SchemaVersions(ctx context.Context, t naming.Topic) ([]SchemaRecord, error) {
	kvs, err := r.Store.List(ctx, schemasKey(t))
	if err != nil {
		return nil, err
	}
	out := make([]SchemaRecord, 0, len(kvs))
	for _, kv := range kvs {
		var rec SchemaRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SchemaVersion returns one version of t's schema; ErrNotFound when missing.
func (r *Resources) SchemaVersion(ctx context.Context, t naming.Topic, v int64) (SchemaRecord, error) {
	var rec SchemaRecord
	_, err := r.getJSON(ctx, schemaVersionKey(t, v), &rec)
	return rec, err
}

// Live returns the versions after the last deletion marker: the schema
// history that compatibility checks and deduplication look at.
func Live(versions []SchemaRecord) []SchemaRecord {
	for i := len(versions) - 1; i >= 0; i-- {
		if versions[i].Deleted {
			return versions[i+1:]
		}
	}
	return versions
}

// AddSchema stores rec as t's next version unless a live version has the
// same hash, whose version is then returned with created=false. check sees
// the live history before the write and may refuse it; when another writer
// adds a version in between, the history is read and checked again.
func (r *Resources) AddSchema(ctx context.Context, t naming.Topic, rec SchemaRecord, check func(live []SchemaRecord) error) (version int64, created bool, err error) {
	for {
		all, err := r.SchemaVersions(ctx, t)
		if err != nil {
			return 0, false, err
		}
		live := Live(all)
		if !rec.Deleted {
			for _, v := range live {
				if v.Hash == rec.Hash {
					return v.Version, false, nil
				}
			}
		}
		if check != nil {
			if err := check(live); err != nil {
				return 0, false, err
			}
		}
		rec.Version = 0
		if len(all) > 0 {
			rec.Version = all[len(all)-1].Version + 1
		}
		err = r.putJSON(ctx, schemaVersionKey(t, rec.Version), rec, NotExists)
		if errors.Is(err, ErrExists) {
			continue // another writer took this version: read and check again
		}
		if err != nil {
			return 0, false, err
		}
		return rec.Version, true, nil
	}
}

// DeleteSchemas forgets every version of t's schema (the topic is gone).
func (r *Resources) DeleteSchemas(ctx context.Context, t naming.Topic) error {
	return r.deletePrefix(ctx, schemasKey(t))
}

// deleteNamespaceSchemas forgets the schemas of every topic of ns.
func (r *Resources) deleteNamespaceSchemas(ctx context.Context, ns naming.Namespace) error {
	return r.deletePrefix(ctx, schemasPrefix+ns.String()+"/")
}

func (r *Resources) deletePrefix(ctx context.Context, prefix string) error {
	kvs, err := r.Store.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := r.Store.Delete(ctx, kv.Key, AnyVersion); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
