// Package schema is the schema registry of MessageBus: the schema types of
// the Pulsar protocol, the compatibility strategies of Pulsar's namespaces
// (checked for AVRO and JSON definitions with github.com/hamba/avro), and a
// Registry that stores versions through meta.Resources. Both the broker
// (PRODUCER, SUBSCRIBE, GET_SCHEMA, GET_OR_CREATE_SCHEMA) and the admin API
// (/admin/v2/schemas/...) use the Registry, so both apply the same rules.
//
// schema depends on meta, naming and wire/pb only; it knows nothing of
// connections, topics' runtime state or HTTP.
package schema
