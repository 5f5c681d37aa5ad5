package connectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Builtin is a connector type.
type Builtin struct {
	Name        string
	Kind        Kind
	Description string
	// Settings returns a new pointer to the type's settings struct, into
	// which configs are decoded (unknown keys refused); if it has a
	// Check() error method, that runs too.
	Settings func() any
	// SecretKeys are settings that must be references.
	SecretKeys []string
	// Parallel types run more than one instance.
	Parallel bool
	// TopicsFromConfig types choose their topics (topicName optional).
	TopicsFromConfig bool
	NewSource        func(settings any) Source
	NewSink          func(settings any) Sink
}

// ConnectorDefinition is Pulsar's answer item of builtinsources/builtinsinks.
type ConnectorDefinition struct {
	Name              string `json:"name"`
	Description       string `json:"description"`
	SourceClass       string `json:"sourceClass,omitempty"`
	SinkClass         string `json:"sinkClass,omitempty"`
	SourceConfigClass string `json:"sourceConfigClass,omitempty"`
	SinkConfigClass   string `json:"sinkConfigClass,omitempty"`
}

var builtins = map[Kind]map[string]*Builtin{KindSource: {}, KindSink: {}}

func register(b *Builtin) { builtins[b.Kind][b.Name] = b }

// Register adds a connector type; connector packages call it from init
// (server imports them).
func Register(b *Builtin) { register(b) }

func builtin(kind Kind, name string) (*Builtin, bool) {
	b, ok := builtins[kind][name]
	return b, ok
}

func builtinNames(kind Kind) []string {
	var names []string
	for n := range builtins[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Builtins lists the connector types of kind.
func Builtins(kind Kind) []ConnectorDefinition {
	var out []ConnectorDefinition
	for _, n := range builtinNames(kind) {
		b := builtins[kind][n]
		d := ConnectorDefinition{Name: b.Name, Description: b.Description}
		if kind == KindSource {
			d.SourceClass = "builtin://" + b.Name
		} else {
			d.SinkClass = "builtin://" + b.Name
		}
		out = append(out, d)
	}
	return out
}

type checker interface{ Check() error }

// validate decodes configs into the type's settings.
func (b *Builtin) validate(configs map[string]any) (any, error) {
	s := b.Settings()
	js, err := json.Marshal(configs)
	if err != nil {
		return nil, err
	}
	if configs == nil {
		js = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(s); err != nil {
		return nil, fmt.Errorf("%s %s configs: %w", b.Name, b.Kind, err)
	}
	if c, ok := s.(checker); ok {
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("%s %s configs: %w", b.Name, b.Kind, err)
		}
	}
	return s, nil
}
