package meta

import (
	"context"
	"errors"
)

// dynamicConfigKey holds the brokers' dynamic configuration overrides
// (name -> value), where Pulsar keeps them (/admin/configuration), so an
// update survives restarts and reaches every broker of a cluster.
const dynamicConfigKey = "/admin/configuration"

// DynamicConfig returns the stored overrides and their version (NotExists
// when there are none).
func (r *Resources) DynamicConfig(ctx context.Context) (map[string]string, int64, error) {
	m := map[string]string{}
	v, err := r.getJSON(ctx, dynamicConfigKey, &m)
	if errors.Is(err, ErrNotFound) {
		return map[string]string{}, NotExists, nil
	}
	return m, v, err
}

// UpdateDynamicConfig applies change to the stored overrides with
// compare-and-set, retrying when another writer came first.
func (r *Resources) UpdateDynamicConfig(ctx context.Context, change func(map[string]string) error) error {
	for {
		m, v, err := r.DynamicConfig(ctx)
		if err != nil {
			return err
		}
		if err := change(m); err != nil {
			return err
		}
		err = r.putJSON(ctx, dynamicConfigKey, m, v)
		if errors.Is(err, ErrBadVersion) || errors.Is(err, ErrExists) {
			continue
		}
		return err
	}
}
