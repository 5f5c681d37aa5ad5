package meta

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Counters are persistent numbers handed out once each, under /counters/ as
// in Pulsar's metadata layout.
const countersPrefix = "/counters/"

// ProducerNameCounter is the counter that gives each broker start its
// producer-name generator id (Pulsar's /counters/producer-name).
const ProducerNameCounter = "producer-name"

// NextCounterValue takes the next value of the named counter: first when the
// counter does not exist yet, then one more on each call. Compare-and-set on
// the record's version makes every value go to exactly one caller, across
// concurrent callers and restarts.
func (r *Resources) NextCounterValue(ctx context.Context, name string, first int64) (int64, error) {
	key := countersPrefix + name
	for {
		next, expected := first, NotExists
		kv, err := r.Store.Get(ctx, key)
		switch {
		case err == nil:
			last, perr := strconv.ParseInt(string(kv.Value), 10, 64)
			if perr != nil {
				return 0, fmt.Errorf("counter %s: bad value %q: %w", key, kv.Value, perr)
			}
			next, expected = last+1, kv.Version
		case !errors.Is(err, ErrNotFound):
			return 0, fmt.Errorf("counter %s: %w", key, err)
		}
		_, err = r.Store.Put(ctx, key, []byte(strconv.FormatInt(next, 10)), expected)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, ErrBadVersion) {
			return 0, fmt.Errorf("counter %s: %w", key, err)
		}
		// Another caller took a value in between: read again.
	}
}

// NextProducerNameGeneratorID takes a new id for the producer names of one
// broker start, which names producers {cluster}-{id}-{seq}: no two starts
// share an id, so no two producers share a broker-assigned name. The first
// id of a new store is 0, as Pulsar's first sequential node; a store that
// already holds a cluster but no counter was written by a version that named
// every producer {cluster}-0-{seq}, so its first id is 1. Call it before
// Bootstrap.
func (r *Resources) NextProducerNameGeneratorID(ctx context.Context) (int64, error) {
	first := int64(0)
	if _, err := r.Store.Get(ctx, countersPrefix+ProducerNameCounter); errors.Is(err, ErrNotFound) {
		clusters, err := r.Clusters(ctx)
		if err != nil {
			return 0, err
		}
		if len(clusters) > 0 {
			first = 1
		}
	} else if err != nil {
		return 0, fmt.Errorf("counter %s: %w", ProducerNameCounter, err)
	}
	return r.NextCounterValue(ctx, ProducerNameCounter, first)
}
