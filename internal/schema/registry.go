package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// ErrNoSchema is returned when a topic has no (live) schema or no such version.
var ErrNoSchema = errors.New("schema not found")

// NoVersion is the version of a producer that registered no schema.
const NoVersion int64 = -1

// EncodeVersion is a version as the protocol carries it (PRODUCER_SUCCESS,
// MessageMetadata.schema_version): 8 bytes, big-endian, as Pulsar's
// LongSchemaVersion.
func EncodeVersion(v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

// DecodeVersion reads an 8-byte big-endian version.
func DecodeVersion(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("schema version must be 8 bytes, not %d", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Policy is what a namespace says about schemas.
type Policy struct {
	Strategy           Strategy // effective: never Undefined
	AutoUpdate         bool
	ValidationEnforced bool
}

// PolicyOf reads a namespace's schema policies, defaults applied.
func PolicyOf(p meta.Policies) Policy {
	return Policy{Strategy: EffectiveStrategy(p), AutoUpdate: AutoUpdateAllowed(p), ValidationEnforced: p.SchemaValidationEnforced}
}

// Registry stores and checks the schemas of topics. It is safe for
// concurrent use: versions are written with compare-and-set in meta.
type Registry struct {
	meta    *meta.Resources
	metrics *Metrics
	now     func() time.Time
}

// NewRegistry returns a registry over md; metrics may be nil.
func NewRegistry(md *meta.Resources, metrics *Metrics) *Registry {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Registry{meta: md, metrics: metrics, now: time.Now}
}

// live returns the versions after the last deletion.
func (r *Registry) live(ctx context.Context, t naming.Topic) ([]meta.SchemaRecord, error) {
	all, err := r.meta.SchemaVersions(ctx, t)
	if err != nil {
		return nil, err
	}
	return meta.Live(all), nil
}

// Latest returns the topic's current schema; ErrNoSchema when it has none.
func (r *Registry) Latest(ctx context.Context, t naming.Topic) (meta.SchemaRecord, error) {
	live, err := r.live(ctx, t)
	if err != nil {
		return meta.SchemaRecord{}, err
	}
	if len(live) == 0 {
		return meta.SchemaRecord{}, fmt.Errorf("%w for topic %s", ErrNoSchema, t.Partitioned())
	}
	return live[len(live)-1], nil
}

// Version returns one version; ErrNoSchema when it does not exist or is
// not live: a deletion hides the versions before it, as in Pulsar (a
// consumer decoding an old message then gets an error, not a stale schema).
func (r *Registry) Version(ctx context.Context, t naming.Topic, v int64) (meta.SchemaRecord, error) {
	live, err := r.live(ctx, t)
	if err != nil {
		return meta.SchemaRecord{}, err
	}
	for _, rec := range live {
		if rec.Version == v {
			return rec, nil
		}
	}
	return meta.SchemaRecord{}, fmt.Errorf("%w: topic %s has no schema version %d", ErrNoSchema, t.Partitioned(), v)
}

// All returns the live versions, oldest first.
func (r *Registry) All(ctx context.Context, t naming.Topic) ([]meta.SchemaRecord, error) {
	return r.live(ctx, t)
}

// Register stores info as the topic's next version unless a live version
// is the same schema (its version is returned). The candidate must pass the
// strategy against the history. Uploads through the admin API use it;
// producers go through ForProducer.
func (r *Registry) Register(ctx context.Context, t naming.Topic, info Info, strategy Strategy) (int64, error) {
	if err := Validate(info); err != nil {
		r.metrics.registrations.WithLabelValues("invalid").Inc()
		return 0, err
	}
	rec := meta.SchemaRecord{Type: string(info.Type), Data: info.Data, Properties: info.Properties,
		Timestamp: r.now().UnixMilli(), Hash: info.Hash()}
	v, created, err := r.meta.AddSchema(ctx, t, rec, func(live []meta.SchemaRecord) error {
		return CheckProducer(strategy, live, info)
	})
	switch {
	case IsIncompatible(err):
		r.metrics.registrations.WithLabelValues("incompatible").Inc()
		r.metrics.incompatible.Inc()
	case err != nil:
		r.metrics.registrations.WithLabelValues("error").Inc()
	case created:
		r.metrics.registrations.WithLabelValues("created").Inc()
	default:
		r.metrics.registrations.WithLabelValues("existing").Inc()
	}
	return v, err
}

// find returns the live version equal to info, -1 when none is.
func find(live []meta.SchemaRecord, info Info) int64 {
	h := info.Hash()
	for _, v := range live {
		if v.Hash == h {
			return v.Version
		}
	}
	return NoVersion
}

// ForProducer decides a producer's schema (nil: it brought none) and
// returns its version (NoVersion for none), as Pulsar's addSchema:
//   - no schema, or BYTES: allowed unless validation is enforced and the
//     topic has a schema;
//   - with auto update: registered (or found) under the strategy;
//   - without auto update: only an already registered version is accepted.
func (r *Registry) ForProducer(ctx context.Context, t naming.Topic, info *Info, pol Policy) (int64, error) {
	if info == nil || info.Type.IsBytes() {
		if !pol.ValidationEnforced {
			return NoVersion, nil
		}
		live, err := r.live(ctx, t)
		if err != nil {
			return 0, err
		}
		if len(live) > 0 {
			r.metrics.incompatible.Inc()
			return 0, &IncompatibleError{Reason: fmt.Sprintf("producers without a schema cannot connect to topic %s, which has a %s schema, while schema_validation_enforced is true",
				t.Partitioned(), live[len(live)-1].Type)}
		}
		return NoVersion, nil
	}
	if pol.AutoUpdate {
		return r.Register(ctx, t, *info, pol.Strategy)
	}
	if err := Validate(*info); err != nil {
		return 0, err
	}
	live, err := r.live(ctx, t)
	if err != nil {
		return 0, err
	}
	if v := find(live, *info); v != NoVersion {
		r.metrics.registrations.WithLabelValues("existing").Inc()
		return v, nil
	}
	r.metrics.registrations.WithLabelValues("incompatible").Inc()
	r.metrics.incompatible.Inc()
	return 0, &IncompatibleError{Reason: fmt.Sprintf("schema not found and schema auto updating is disabled: the %s schema is not a registered version of topic %s and is_allow_auto_update_schema is false", info.Type, t.Partitioned())}
}

// ForConsumer decides a consumer's schema (nil: none), as Pulsar's
// addSchemaIfIdleOrCheckCompatible: on a topic with a schema the
// consumer's must be a registered version or able to read the data; on a
// topic without one it is registered when the topic is idle (no producer,
// no data), refused otherwise.
func (r *Registry) ForConsumer(ctx context.Context, t naming.Topic, info *Info, pol Policy, idle bool) error {
	if info == nil || info.Type.IsBytes() {
		return nil
	}
	if err := Validate(*info); err != nil {
		return err
	}
	live, err := r.live(ctx, t)
	if err != nil {
		return err
	}
	if len(live) == 0 {
		if !idle {
			r.metrics.incompatible.Inc()
			return &IncompatibleError{Reason: fmt.Sprintf("topic %s does not have a schema to check the consumer's %s schema against (it has producers or data without a schema)", t.Partitioned(), info.Type)}
		}
		_, err := r.ForProducer(ctx, t, info, pol)
		return err
	}
	if find(live, *info) != NoVersion {
		return nil
	}
	if err := CheckConsumer(pol.Strategy, live, *info); err != nil {
		r.metrics.incompatible.Inc()
		return err
	}
	return nil
}

// Compatible checks info against the topic's history as an upload would
// be checked (Pulsar's .../compatibility endpoint).
func (r *Registry) Compatible(ctx context.Context, t naming.Topic, info Info, strategy Strategy) error {
	if err := Validate(info); err != nil {
		return err
	}
	live, err := r.live(ctx, t)
	if err != nil {
		return err
	}
	if find(live, info) != NoVersion {
		return nil
	}
	return CheckProducer(strategy, live, info)
}

// VersionOf returns the live version equal to info; ErrNoSchema when none is.
func (r *Registry) VersionOf(ctx context.Context, t naming.Topic, info Info) (int64, error) {
	live, err := r.live(ctx, t)
	if err != nil {
		return 0, err
	}
	if v := find(live, info); v != NoVersion {
		return v, nil
	}
	return 0, fmt.Errorf("%w: the %s schema is not a version of topic %s", ErrNoSchema, info.Type, t.Partitioned())
}

// Delete deletes the topic's schema and returns the deletion's version.
// Without force, as Pulsar, a deletion marker is written: the versions
// before it are no longer served and version numbers are never reused.
// With force every version is removed.
func (r *Registry) Delete(ctx context.Context, t naming.Topic, force bool) (int64, error) {
	live, err := r.live(ctx, t)
	if err != nil {
		return 0, err
	}
	if len(live) == 0 {
		return 0, fmt.Errorf("%w for topic %s", ErrNoSchema, t.Partitioned())
	}
	r.metrics.deletions.Inc()
	if force {
		return live[len(live)-1].Version, r.meta.DeleteSchemas(ctx, t)
	}
	v, _, err := r.meta.AddSchema(ctx, t, meta.SchemaRecord{Deleted: true, Timestamp: r.now().UnixMilli()}, nil)
	return v, err
}

// DeleteTopic forgets every version of a deleted topic's schema.
func (r *Registry) DeleteTopic(ctx context.Context, t naming.Topic) error {
	return r.meta.DeleteSchemas(ctx, t)
}
