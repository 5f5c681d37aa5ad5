package connectors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Source is a running source instance's code.
type Source interface {
	// Run reads the external system and sends records until ctx ends or it
	// fails (the instance then restarts after a backoff and Run starts
	// again from the last checkpoint).
	Run(ctx context.Context, env *SourceEnv) error
}

// Record is one message a source sends.
type Record struct {
	// Topic overrides the connector's topicName.
	Topic      string
	Key        string
	Value      []byte
	Properties map[string]string
	EventTime  time.Time
	// Schema, when set, is registered for the topic (a new version when
	// it changed) and the message carries its version.
	Schema pulsar.Schema
}

// SourceEnv is what a source instance is given.
type SourceEnv struct {
	Instance    int
	Parallelism int
	// TopicName is the config's topicName ("" for sources that choose).
	TopicName string
	// Tenant, Namespace and Name are the connector's.
	Tenant, Namespace, Name string
	Log                     *slog.Logger
	Checkpoints             Checkpoints
	send                    func(ctx context.Context, r *Record, done func(error))
	flush                   func() error
}

// Send publishes r asynchronously; done is called once with the receipt's
// outcome (nil: stored by the broker). Records to one topic keep their order.
func (e *SourceEnv) Send(ctx context.Context, r *Record, done func(error)) { e.send(ctx, r, done) }

// Flush sends what the producers batch now.
func (e *SourceEnv) Flush() error { return e.flush() }

// Sink is a running sink instance's code.
type Sink interface {
	// Run writes the messages from env.Messages to the external system and
	// calls env.Ack for each after its write succeeded, until ctx ends or
	// it fails (unacknowledged messages then come back to the next run).
	Run(ctx context.Context, env *SinkEnv) error
}

// SinkEnv is what a sink instance is given.
type SinkEnv struct {
	Instance    int
	Parallelism int
	Log         *slog.Logger
	Checkpoints Checkpoints
	Messages    <-chan pulsar.Message
	ack         func(pulsar.Message)
	writeErr    func(error)
	schemas     SchemaReader
}

// TopicSchema is a version of a topic's schema in the registry.
type TopicSchema struct {
	// Type is Pulsar's name: AVRO, JSON, STRING, ...
	Type string
	// Definition is the schema data (for AVRO and JSON an Avro record
	// definition).
	Definition []byte
}

// SchemaReader reads the schema registry (internal/schema).
type SchemaReader interface {
	// SchemaVersion returns the topic's schema version (as messages carry
	// it, pulsar.Message.SchemaVersion).
	SchemaVersion(ctx context.Context, topic string, version []byte) (TopicSchema, error)
}

// ErrNoRegistry: the worker was made without a schema registry.
var ErrNoRegistry = errors.New("connectors: no schema registry on this worker")

// Schema returns the schema a message of topic was written with (its
// SchemaVersion); the call has a deadline of CallTimeout.
func (e *SinkEnv) Schema(ctx context.Context, topic string, version []byte) (TopicSchema, error) {
	if e.schemas == nil {
		return TopicSchema{}, ErrNoRegistry
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return e.schemas.SchemaVersion(ctx, topic, version)
}

// Ack acknowledges m: its external write succeeded.
func (e *SinkEnv) Ack(m pulsar.Message) { e.ack(m) }

// WriteFailed records a failed external write (counted in the status) that
// the sink retries itself.
func (e *SinkEnv) WriteFailed(err error) { e.writeErr(err) }

// Checkpoints is an instance's durable key-value state in the metadata
// store.
type Checkpoints interface {
	Get(ctx context.Context, key string) ([]byte, error) // nil, nil when absent
	Put(ctx context.Context, key string, value []byte) error
}
