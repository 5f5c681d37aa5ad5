package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Type is a schema type by Pulsar's name (SchemaType in the Java API).
type Type string

// The schema types Pulsar knows.
const (
	None           Type = "NONE"
	Bytes          Type = "BYTES"
	String         Type = "STRING"
	JSON           Type = "JSON"
	Protobuf       Type = "PROTOBUF"
	Avro           Type = "AVRO"
	Boolean        Type = "BOOLEAN"
	Int8           Type = "INT8"
	Int16          Type = "INT16"
	Int32          Type = "INT32"
	Int64          Type = "INT64"
	Float          Type = "FLOAT"
	Double         Type = "DOUBLE"
	Date           Type = "DATE"
	Time           Type = "TIME"
	Timestamp      Type = "TIMESTAMP"
	KeyValue       Type = "KEY_VALUE"
	Instant        Type = "INSTANT"
	LocalDate      Type = "LOCAL_DATE"
	LocalTime      Type = "LOCAL_TIME"
	LocalDateTime  Type = "LOCAL_DATE_TIME"
	ProtobufNative Type = "PROTOBUF_NATIVE"
)

// wireTypes maps the protocol's Schema.Type to Pulsar's names.
var wireTypes = map[pb.Schema_Type]Type{
	pb.Schema_None: None, pb.Schema_String: String, pb.Schema_Json: JSON, pb.Schema_Protobuf: Protobuf,
	pb.Schema_Avro: Avro, pb.Schema_Bool: Boolean, pb.Schema_Int8: Int8, pb.Schema_Int16: Int16,
	pb.Schema_Int32: Int32, pb.Schema_Int64: Int64, pb.Schema_Float: Float, pb.Schema_Double: Double,
	pb.Schema_Date: Date, pb.Schema_Time: Time, pb.Schema_Timestamp: Timestamp, pb.Schema_KeyValue: KeyValue,
	pb.Schema_Instant: Instant, pb.Schema_LocalDate: LocalDate, pb.Schema_LocalTime: LocalTime,
	pb.Schema_LocalDateTime: LocalDateTime, pb.Schema_ProtobufNative: ProtobufNative,
}

// names lists the types an upload may name, sorted for messages.
var names = func() []string {
	out := []string{string(Bytes)}
	for _, t := range wireTypes {
		out = append(out, string(t))
	}
	sort.Strings(out)
	return out
}()

// ParseType reads a type name as Pulsar's admin API takes it (any case).
func ParseType(s string) (Type, error) {
	t := Type(strings.ToUpper(strings.TrimSpace(s)))
	if t == Bytes {
		return t, nil
	}
	for _, w := range wireTypes {
		if w == t {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown schema type %q (one of %s)", s, strings.Join(names, ", "))
}

// FromWire returns the type of a protocol schema.
func FromWire(t pb.Schema_Type) Type {
	if n, ok := wireTypes[t]; ok {
		return n
	}
	return None
}

// Wire returns the protocol's Schema.Type of t (BYTES is None on the wire).
func (t Type) Wire() pb.Schema_Type {
	for w, n := range wireTypes {
		if n == t {
			return w
		}
	}
	return pb.Schema_None
}

// IsBytes reports whether t means "no schema": a producer or consumer
// with it is treated as one that brought none, as Pulsar does.
func (t Type) IsBytes() bool { return t == None || t == Bytes }

// hasAvroDefinition reports whether the data of t is an Avro schema
// definition (JSON and the Go client's PROTOBUF carry one too, but Pulsar
// checks only AVRO and JSON with Avro's rules).
func (t Type) hasAvroDefinition() bool { return t == Avro || t == JSON }

// Info is a schema as a client or an upload gives it.
type Info struct {
	Type       Type
	Data       []byte
	Properties map[string]string
}

// FromProto reads a protocol schema.
func FromProto(s *pb.Schema) Info {
	props := map[string]string{}
	for _, kv := range s.GetProperties() {
		props[kv.GetKey()] = kv.GetValue()
	}
	return Info{Type: FromWire(s.GetType()), Data: s.GetSchemaData(), Properties: props}
}

// Hash identifies a schema by type and data, as Pulsar's schema hash
// does: registering the same schema twice yields one version. An Avro
// definition is hashed as re-marshalled after parsing, so that the same definition
// written differently (spacing, attribute order; clients resend what they
// parsed) is the same schema.
func (i Info) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", i.Type)
	data := i.Data
	if s := avroOf(i.Type, i.Data); s != nil {
		// Not Avro's Parsing Canonical Form: it drops defaults, which
		// matter to compatibility.
		if b, err := json.Marshal(s); err == nil {
			data = b
		}
	}
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
