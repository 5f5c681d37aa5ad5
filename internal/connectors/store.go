package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/prometheus/client_golang/prometheus"
)

// Metadata layout:
//
//	/connectors/<sources|sinks>/config/<tenant>/<ns>/<name>                      Record (JSON)
//	/connectors/<sources|sinks>/checkpoint/<tenant>/<ns>/<name>/<instance>/<key>  checkpoint value
const prefix = "/connectors/"

// entry is what the metadata store holds per connector.
type entry struct {
	Config     Config `json:"config"`
	Stopped    bool   `json:"stopped,omitempty"`
	CreateTime int64  `json:"createTime"`
	UpdateTime int64  `json:"updateTime"`
}

// ErrNotFound is returned for a connector that does not exist.
var ErrNotFound = errors.New("connector does not exist")

// ErrExists is returned by create for a connector that exists.
var ErrExists = errors.New("connector already exists")

type store struct{ meta meta.Store }

func configKey(kind Kind, fqn string) string { return prefix + kind.Plural() + "/config/" + fqn }

func checkpointPrefix(kind Kind, fqn string) string {
	return prefix + kind.Plural() + "/checkpoint/" + fqn + "/"
}

func (s store) get(ctx context.Context, kind Kind, fqn string) (entry, int64, error) {
	kv, err := s.meta.Get(ctx, configKey(kind, fqn))
	if errors.Is(err, meta.ErrNotFound) {
		return entry{}, 0, ErrNotFound
	}
	if err != nil {
		return entry{}, 0, err
	}
	var r entry
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return entry{}, 0, fmt.Errorf("%s record %s: %w", kind, fqn, err)
	}
	return r, kv.Version, nil
}

func (s store) list(ctx context.Context, kind Kind, sub string) ([]entry, error) {
	kvs, err := s.meta.List(ctx, prefix+kind.Plural()+"/config/"+sub)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(kvs))
	for _, kv := range kvs {
		var r entry
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("%s record %s: %w", kind, kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (s store) put(ctx context.Context, kind Kind, r entry, expected int64) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.meta.Put(ctx, configKey(kind, r.Config.FQN()), b, expected)
	if errors.Is(err, meta.ErrBadVersion) && expected == meta.NotExists {
		return ErrExists
	}
	return err
}

func (s store) delete(ctx context.Context, kind Kind, fqn string) error {
	err := s.meta.Delete(ctx, configKey(kind, fqn), meta.AnyVersion)
	if errors.Is(err, meta.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	kvs, err := s.meta.List(ctx, checkpointPrefix(kind, fqn))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := s.meta.Delete(ctx, kv.Key, meta.AnyVersion); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	return nil
}

// metaCheckpoints is one instance's Checkpoints.
type metaCheckpoints struct {
	meta   meta.Store
	prefix string
	// stored counts successful Puts (nil in tests).
	stored prometheus.Counter
}

func newCheckpoints(m meta.Store, kind Kind, fqn string, instance int, stored prometheus.Counter) metaCheckpoints {
	return metaCheckpoints{meta: m, prefix: checkpointPrefix(kind, fqn) + strconv.Itoa(instance) + "/", stored: stored}
}

func (c metaCheckpoints) Get(ctx context.Context, key string) ([]byte, error) {
	kv, err := c.meta.Get(ctx, c.prefix+url.PathEscape(key))
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return kv.Value, nil
}

func (c metaCheckpoints) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.meta.Put(ctx, c.prefix+url.PathEscape(key), value, meta.AnyVersion)
	if err == nil && c.stored != nil {
		c.stored.Inc()
	}
	return err
}

func nowMillis() int64 { return time.Now().UnixMilli() }
