package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/messagebus/messagebus/internal/meta"
)

// Strategy is a namespace's schema compatibility strategy, by Pulsar's name.
type Strategy string

// Pulsar's strategies. Undefined defers to the broker default, FULL as in
// Pulsar's broker.conf (schemaCompatibilityStrategy=FULL).
const (
	Undefined          Strategy = "UNDEFINED"
	AlwaysIncompatible Strategy = "ALWAYS_INCOMPATIBLE"
	AlwaysCompatible   Strategy = "ALWAYS_COMPATIBLE"
	Backward           Strategy = "BACKWARD"
	Forward            Strategy = "FORWARD"
	Full               Strategy = "FULL"
	BackwardTransitive Strategy = "BACKWARD_TRANSITIVE"
	ForwardTransitive  Strategy = "FORWARD_TRANSITIVE"
	FullTransitive     Strategy = "FULL_TRANSITIVE"

	DefaultStrategy = Full
)

var strategies = []Strategy{Undefined, AlwaysIncompatible, AlwaysCompatible, Backward, Forward, Full,
	BackwardTransitive, ForwardTransitive, FullTransitive}

// ParseStrategy reads a strategy name (any case, quotes of a JSON string
// removed).
func ParseStrategy(s string) (Strategy, error) {
	st := Strategy(strings.ToUpper(strings.Trim(strings.TrimSpace(s), `"`)))
	for _, k := range strategies {
		if k == st {
			return st, nil
		}
	}
	all := make([]string, len(strategies))
	for i, k := range strategies {
		all[i] = string(k)
	}
	return "", fmt.Errorf("unknown schema compatibility strategy %q (one of %s)", s, strings.Join(all, ", "))
}

// NamespaceStrategy is the strategy set on a namespace (Undefined when none).
func NamespaceStrategy(p meta.Policies) Strategy {
	if p.SchemaCompatibilityStrategy == "" {
		return Undefined
	}
	return Strategy(p.SchemaCompatibilityStrategy)
}

// EffectiveStrategy is the strategy applied to the topics of a namespace.
func EffectiveStrategy(p meta.Policies) Strategy {
	if s := NamespaceStrategy(p); s != Undefined {
		return s
	}
	return DefaultStrategy
}

// AutoUpdateAllowed reports whether producers may register new versions
// (Pulsar's is_allow_auto_update_schema, true by default).
func AutoUpdateAllowed(p meta.Policies) bool {
	return p.IsAllowAutoUpdateSchema == nil || *p.IsAllowAutoUpdateSchema
}

func (s Strategy) transitive() bool {
	return s == BackwardTransitive || s == ForwardTransitive || s == FullTransitive
}

func (s Strategy) backward() bool {
	return s == Backward || s == BackwardTransitive || s == Full || s == FullTransitive
}

func (s Strategy) forward() bool {
	return s == Forward || s == ForwardTransitive || s == Full || s == FullTransitive
}

// IncompatibleError says why a schema was refused; the broker answers it
// with ServerError IncompatibleSchema, the admin API with 409 Conflict.
type IncompatibleError struct{ Reason string }

func (e *IncompatibleError) Error() string { return "incompatible schema: " + e.Reason }

func incompatible(format string, args ...any) error {
	return &IncompatibleError{Reason: fmt.Sprintf(format, args...)}
}

// IsIncompatible reports whether err is an IncompatibleError.
func IsIncompatible(err error) bool {
	var ie *IncompatibleError
	return errors.As(err, &ie)
}

// InvalidError says a schema definition cannot be used (bad Avro, bad JSON).
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid schema: " + e.Reason }

// IsInvalid reports whether err is an InvalidError.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// ParseAvro parses an Avro schema definition. Each call uses its own name
// cache: versions of one record name must not resolve to each other.
func ParseAvro(def []byte) (avro.Schema, error) {
	return avro.ParseBytesWithCache(def, "", &avro.SchemaCache{})
}

// Validate checks that a schema's data fits its type: AVRO must be an
// Avro definition; JSON must be JSON (an Avro definition, as the clients
// send, or a JSON Schema document of old clients).
func Validate(i Info) error {
	switch i.Type {
	case Avro:
		if _, err := ParseAvro(i.Data); err != nil {
			return &InvalidError{Reason: fmt.Sprintf("the AVRO schema is not a valid Avro definition: %v", err)}
		}
	case JSON, ProtobufNative:
		if !json.Valid(i.Data) {
			return &InvalidError{Reason: fmt.Sprintf("the %s schema definition is not valid JSON", i.Type)}
		}
	}
	return nil
}

// avroOf returns the Avro definition of a schema, nil when it has none
// (JSON Schema documents of old clients are checked by type only).
func avroOf(t Type, data []byte) avro.Schema {
	if !t.hasAvroDefinition() {
		return nil
	}
	s, err := ParseAvro(data)
	if err != nil {
		return nil
	}
	return s
}

// CheckProducer decides whether candidate may become a new version after
// the live history (oldest first) under strategy, as a producer or an
// upload asks. An empty history accepts anything.
func CheckProducer(strategy Strategy, live []meta.SchemaRecord, candidate Info) error {
	if len(live) == 0 || strategy == AlwaysCompatible {
		return nil
	}
	if strategy == Undefined || strategy == "" {
		strategy = DefaultStrategy
	}
	if strategy == AlwaysIncompatible {
		return incompatible("the topic already has a schema (version %d) and the strategy ALWAYS_INCOMPATIBLE refuses any other", live[len(live)-1].Version)
	}
	against := live[len(live)-1:]
	if strategy.transitive() {
		against = live
	}
	for i := len(against) - 1; i >= 0; i-- {
		if err := checkPair(strategy, against[i], candidate); err != nil {
			return err
		}
	}
	return nil
}

// CheckConsumer decides whether a consumer's schema, not a registered
// version, can read the topic's data, as Pulsar's
// checkConsumerCompatibility: it must read the latest version (BACKWARD);
// under BACKWARD_TRANSITIVE and FULL_TRANSITIVE it is checked against every
// version with that strategy; ALWAYS_INCOMPATIBLE refuses it.
func CheckConsumer(strategy Strategy, live []meta.SchemaRecord, candidate Info) error {
	if len(live) == 0 || strategy == AlwaysCompatible {
		return nil
	}
	if strategy == Undefined || strategy == "" {
		strategy = DefaultStrategy
	}
	if strategy == AlwaysIncompatible {
		return incompatible("the consumer's schema is not a registered version of the topic and the strategy ALWAYS_INCOMPATIBLE refuses any other")
	}
	st := Backward
	against := live[len(live)-1:]
	if strategy == BackwardTransitive || strategy == FullTransitive {
		against, st = live, strategy
	}
	for i := len(against) - 1; i >= 0; i-- {
		if err := checkPair(st, against[i], candidate); err != nil {
			return err
		}
	}
	return nil
}

// checkPair checks candidate against one existing version.
func checkPair(strategy Strategy, old meta.SchemaRecord, candidate Info) error {
	oldType := Type(old.Type)
	if oldType != candidate.Type {
		return incompatible("the schema type changes from %s (version %d) to %s", oldType, old.Version, candidate.Type)
	}
	oldAvro := avroOf(oldType, old.Data)
	newAvro := avroOf(candidate.Type, candidate.Data)
	if oldAvro == nil || newAvro == nil {
		return nil // same type, no definition to compare: compatible, as Pulsar's default check
	}
	sc := avro.NewSchemaCompatibility()
	if strategy.backward() {
		if err := sc.Compatible(newAvro, oldAvro); err != nil {
			return incompatible("%s check against version %d failed: the new schema cannot read data written with version %d: %v",
				strategy, old.Version, old.Version, err)
		}
	}
	if strategy.forward() {
		if err := sc.Compatible(oldAvro, newAvro); err != nil {
			return incompatible("%s check against version %d failed: version %d cannot read data written with the new schema: %v",
				strategy, old.Version, old.Version, err)
		}
	}
	return nil
}
