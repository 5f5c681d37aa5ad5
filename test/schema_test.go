package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/messagebus/messagebus/server"
	"google.golang.org/protobuf/proto"
)

// avroRecord builds an Avro record definition named Rec with the given
// fields (JSON fragments).
func avroRecord(fields ...string) string {
	return `{"type":"record","name":"Rec","namespace":"mb.test","fields":[` + strings.Join(fields, ",") + `]}`
}

type schemaCase struct {
	name   string
	schema func() pulsar.Schema
	value  any        // what is sent
	out    func() any // a pointer to decode into
}

type avroUser struct {
	Name string `avro:"name" json:"name"`
	Age  int    `avro:"age" json:"age"`
}

const userDef = `{"type":"record","name":"User","namespace":"mb.test","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}`

// TestSchemaTypesProduceConsume sends and receives one value with every
// schema type the Go client offers; the consumer decodes it with the
// schema fetched by the version the message carries (GET_SCHEMA).
func TestSchemaTypesProduceConsume(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	kv := &pb.KeyValue{Key: proto.String("k"), Value: proto.String("v")}
	cases := []schemaCase{
		{"avro", func() pulsar.Schema { return pulsar.NewAvroSchema(userDef, nil) }, avroUser{"ann", 42}, func() any { return &avroUser{} }},
		{"json", func() pulsar.Schema { return pulsar.NewJSONSchema(userDef, nil) }, avroUser{"bob", 7}, func() any { return &avroUser{} }},
		{"protobuf", func() pulsar.Schema {
			return pulsar.NewProtoSchema(`{"type":"record","name":"KeyValue","fields":[{"name":"key","type":"string"},{"name":"value","type":"string"}]}`, nil)
		}, kv, func() any { return &pb.KeyValue{} }},
		{"protonative", func() pulsar.Schema { return pulsar.NewProtoNativeSchemaWithMessage(&pb.KeyValue{}, nil) }, kv, func() any { return &pb.KeyValue{} }},
		// The client's StringSchema decodes into a **string.
		{"string", func() pulsar.Schema { return pulsar.NewStringSchema(nil) }, "hello", func() any { var s *string; return &s }},
		{"int8", func() pulsar.Schema { return pulsar.NewInt8Schema(nil) }, int8(-8), func() any { var v int8; return &v }},
		{"int16", func() pulsar.Schema { return pulsar.NewInt16Schema(nil) }, int16(-1600), func() any { var v int16; return &v }},
		{"int32", func() pulsar.Schema { return pulsar.NewInt32Schema(nil) }, int32(-320000), func() any { var v int32; return &v }},
		{"int64", func() pulsar.Schema { return pulsar.NewInt64Schema(nil) }, int64(-64 << 40), func() any { var v int64; return &v }},
		{"float", func() pulsar.Schema { return pulsar.NewFloatSchema(nil) }, float32(1.5), func() any { var v float32; return &v }},
		{"double", func() pulsar.Schema { return pulsar.NewDoubleSchema(nil) }, 2.25, func() any { var v float64; return &v }},
		{"bytes", func() pulsar.Schema { return pulsar.NewBytesSchema(nil) }, []byte{1, 2, 3}, func() any { var v []byte; return &v }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniqueTopic(t)
			consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Schema: tc.schema()})
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: tc.schema()})
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Value: tc.value}); err != nil {
				t.Fatal(err)
			}
			m := receiveN(t, consumer, 1, 10*time.Second)[0]
			got := tc.out()
			if err := m.GetSchemaValue(got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tc.value
			if pm, ok := want.(proto.Message); ok {
				if !proto.Equal(pm, got.(proto.Message)) {
					t.Fatalf("got %v, want %v", got, want)
				}
			} else if g := reflect.Indirect(reflect.Indirect(reflect.ValueOf(got))).Interface(); !reflect.DeepEqual(g, want) {
				t.Fatalf("got %#v, want %#v", g, want)
			}
			if tc.name == "bytes" {
				// BYTES is "no schema", as in Pulsar: nothing registered.
				if len(m.SchemaVersion()) != 0 {
					t.Fatalf("bytes message carries schema version %x", m.SchemaVersion())
				}
				if _, err := admin.Schemas().GetSchemaInfo(topic); err == nil {
					t.Fatal("a BYTES producer registered a schema")
				}
				return
			}
			if v := m.SchemaVersion(); len(v) != 8 || !reflect.DeepEqual(v, make([]byte, 8)) {
				t.Fatalf("schema version %x, want 8 zero bytes (version 0)", v)
			}
			info, err := admin.Schemas().GetSchemaInfoWithVersion(topic)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.schema().GetSchemaInfo(); info.Version != 0 || !strings.EqualFold(info.SchemaInfo.Type, schemaTypeName(want.Type)) ||
				string(info.SchemaInfo.Schema) != want.Schema {
				t.Fatalf("admin shows version %d type %s schema %q; want 0 %v %q", info.Version, info.SchemaInfo.Type, info.SchemaInfo.Schema, want.Type, want.Schema)
			}
		})
	}
}

func schemaTypeName(t pulsar.SchemaType) string {
	return map[pulsar.SchemaType]string{pulsar.AVRO: "AVRO", pulsar.JSON: "JSON", pulsar.PROTOBUF: "PROTOBUF", pulsar.ProtoNative: "PROTOBUF_NATIVE",
		pulsar.STRING: "STRING", pulsar.INT8: "INT8", pulsar.INT16: "INT16", pulsar.INT32: "INT32", pulsar.INT64: "INT64",
		pulsar.FLOAT: "FLOAT", pulsar.DOUBLE: "DOUBLE"}[t]
}

// createProducer creates (and closes) a producer with an Avro schema.
func avroProducer(client pulsar.Client, topic, def string) error {
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(def, nil)})
	if err == nil {
		p.Close()
	}
	return err
}

func setStrategy(t *testing.T, admin pulsaradmin.Client, ns string, st utils.SchemaCompatibilityStrategy) {
	t.Helper()
	if err := admin.Namespaces().SetSchemaCompatibilityStrategy(nsName(t, ns), st); err != nil {
		t.Fatal(err)
	}
	got, err := admin.Namespaces().GetSchemaCompatibilityStrategy(nsName(t, ns))
	if err != nil || got != st {
		t.Fatalf("strategy of %s: %v %v, want %v", ns, got, err, st)
	}
}

// TestSchemaCompatibilityStrategies evolves an Avro schema under every
// strategy: a producer with the second schema is accepted or refused with
// IncompatibleSchema, and the admin compatibility check agrees.
func TestSchemaCompatibilityStrategies(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	base := avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":7}`)
	changes := []struct {
		name string
		def  string
		// accepted under BACKWARD, FORWARD (FULL is both)
		backward, forward bool
	}{
		{"add field with default", avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":7}`, `{"name":"c","type":"string","default":""}`), true, true},
		{"add field without default", avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":7}`, `{"name":"c","type":"string"}`), false, true},
		{"remove field with default", avroRecord(`{"name":"a","type":"string"}`), true, true},
		{"remove field without default", avroRecord(`{"name":"b","type":"int","default":7}`), true, false},
		{"change field type", avroRecord(`{"name":"a","type":"int"}`, `{"name":"b","type":"int","default":7}`), false, false},
		{"promote int to long", avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"long","default":7}`), true, false},
	}
	strategies := []utils.SchemaCompatibilityStrategy{utils.SchemaCompatibilityStrategyBackward, utils.SchemaCompatibilityStrategyForward,
		utils.SchemaCompatibilityStrategyFull, utils.SchemaCompatibilityStrategyAlwaysCompatible, utils.SchemaCompatibilityStrategyAlwaysIncompatible,
		utils.SchemaCompatibilityStrategyBackwardTransitive, utils.SchemaCompatibilityStrategyForwardTransitive, utils.SchemaCompatibilityStrategyFullTransitive}
	for _, st := range strategies {
		ns := newNamespace(t, admin)
		setStrategy(t, admin, ns, st)
		for i, ch := range changes {
			want := map[utils.SchemaCompatibilityStrategy]bool{
				"BACKWARD": ch.backward, "BACKWARD_TRANSITIVE": ch.backward, "FORWARD": ch.forward, "FORWARD_TRANSITIVE": ch.forward,
				"FULL": ch.backward && ch.forward, "FULL_TRANSITIVE": ch.backward && ch.forward, "ALWAYS_COMPATIBLE": true, "ALWAYS_INCOMPATIBLE": false,
			}[st]
			topic := fmt.Sprintf("persistent://%s/c%d", ns, i)
			if err := avroProducer(client, topic, base); err != nil {
				t.Fatalf("%s, first schema: %v", st, err)
			}
			res, err := admin.Schemas().TestCompatibilityWithPostSchemaPayload(topic, utils.PostSchemaPayload{SchemaType: "AVRO", Schema: ch.def})
			if err != nil {
				t.Fatalf("%s %s: compatibility: %v", st, ch.name, err)
			}
			if res.IsCompatibility != want || res.SchemaCompatibilityStrategy != st {
				t.Errorf("%s %s: compatibility endpoint says %v (%s), want %v", st, ch.name, res.IsCompatibility, res.SchemaCompatibilityStrategy, want)
			}
			err = avroProducer(client, topic, ch.def)
			if want && err != nil {
				t.Errorf("%s %s: refused: %v", st, ch.name, err)
			}
			if !want && (err == nil || !strings.Contains(err.Error(), "incompatible schema")) {
				t.Errorf("%s %s: want an incompatible schema error, got %v", st, ch.name, err)
			}
		}
	}
	t.Run("type change", func(t *testing.T) {
		topic := uniqueTopic(t)
		if err := avroProducer(client, topic, base); err != nil {
			t.Fatal(err)
		}
		_, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewJSONSchema(base, nil)})
		if err == nil || !strings.Contains(err.Error(), "schema type changes from AVRO (version 0) to JSON") {
			t.Fatalf("AVRO to JSON: %v", err)
		}
	})
	// A chain each step of which is compatible with the one before, not
	// with the first: only the transitive strategy refuses the last step.
	t.Run("transitive", func(t *testing.T) {
		chains := map[utils.SchemaCompatibilityStrategy][]string{
			"BACKWARD": {avroRecord(`{"name":"a","type":"string"}`), avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":1}`),
				avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int"}`)},
			"FORWARD": {avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int"}`), avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":1}`),
				avroRecord(`{"name":"a","type":"string"}`)},
		}
		for st, chain := range chains {
			for _, transitive := range []bool{false, true} {
				strategy := st
				if transitive {
					strategy += "_TRANSITIVE"
				}
				ns := newNamespace(t, admin)
				setStrategy(t, admin, ns, strategy)
				topic := "persistent://" + ns + "/chain"
				for i, def := range chain {
					err := avroProducer(client, topic, def)
					if i < 2 || !transitive {
						if err != nil {
							t.Fatalf("%s step %d: %v", strategy, i, err)
						}
					} else if err == nil || !strings.Contains(err.Error(), "against version 0") {
						t.Fatalf("%s step %d: want refused against version 0, got %v", strategy, i, err)
					}
				}
			}
		}
	})
}

// TestSchemaAutoUpdate: with is_allow_auto_update_schema false a producer
// may use a registered version but not bring a new one; consumers may
// still use the existing version.
func TestSchemaAutoUpdate(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	if on, err := admin.Namespaces().GetIsAllowAutoUpdateSchema(nsName(t, ns)); err != nil || !on {
		t.Fatalf("default auto update: %v %v, want true", on, err)
	}
	topic := "persistent://" + ns + "/auto"
	v0 := avroRecord(`{"name":"a","type":"string"}`)
	v1 := avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":1}`)
	if err := avroProducer(client, topic, v0); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().SetIsAllowAutoUpdateSchema(nsName(t, ns), false); err != nil {
		t.Fatal(err)
	}
	if on, err := admin.Namespaces().GetIsAllowAutoUpdateSchema(nsName(t, ns)); err != nil || on {
		t.Fatalf("auto update after disabling: %v %v", on, err)
	}
	err := avroProducer(client, topic, v1)
	if err == nil || !strings.Contains(err.Error(), "schema auto updating is disabled") {
		t.Fatalf("new version with auto update off: %v", err)
	}
	if err := avroProducer(client, topic, v0); err != nil {
		t.Fatalf("registered version with auto update off: %v", err)
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Schema: pulsar.NewAvroSchema(v0, nil)})
	if err != nil {
		t.Fatalf("consumer with the registered version: %v", err)
	}
	c.Close()
	// An upload by an administrator is not a producer's auto update.
	// Written differently from what the client sends: the same schema.
	if err := admin.Schemas().CreateSchemaByPayload(topic, utils.PostSchemaPayload{SchemaType: "AVRO", Schema: strings.ReplaceAll(v1, ",", " , ")}); err != nil {
		t.Fatalf("upload with auto update off: %v", err)
	}
	if err := avroProducer(client, topic, v1); err != nil {
		t.Fatalf("uploaded version with auto update off: %v", err)
	}
	if err := admin.Namespaces().SetIsAllowAutoUpdateSchema(nsName(t, ns), true); err != nil {
		t.Fatal(err)
	}
	v2 := avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":1}`, `{"name":"c","type":"int","default":2}`)
	if err := avroProducer(client, topic, v2); err != nil {
		t.Fatalf("new version with auto update back on: %v", err)
	}
}

// TestSchemaValidationEnforced: a producer without a schema is accepted on
// a topic with a schema unless schema_validation_enforced.
func TestSchemaValidationEnforced(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	topic := "persistent://" + ns + "/enforced"
	if err := avroProducer(client, topic, userDef); err != nil {
		t.Fatal(err)
	}
	for _, sch := range []pulsar.Schema{nil, pulsar.NewBytesSchema(nil)} {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: sch})
		if err != nil {
			t.Fatalf("producer without schema (%T), validation off: %v", sch, err)
		}
		p.Close()
	}
	if err := admin.Namespaces().SetSchemaValidationEnforced(nsName(t, ns), true); err != nil {
		t.Fatal(err)
	}
	if on, err := admin.Namespaces().GetSchemaValidationEnforced(nsName(t, ns)); err != nil || !on {
		t.Fatalf("validation enforced: %v %v", on, err)
	}
	for _, sch := range []pulsar.Schema{nil, pulsar.NewBytesSchema(nil)} {
		_, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: sch})
		if err == nil || !strings.Contains(err.Error(), "schema_validation_enforced") {
			t.Fatalf("producer without schema (%T), validation on: %v", sch, err)
		}
	}
	// A topic without a schema still takes producers without one.
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://" + ns + "/plain"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// TestSchemaConsumer: a consumer whose schema cannot read the topic's data
// is refused; one that can (or a registered version) is accepted.
func TestSchemaConsumer(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	if err := avroProducer(client, topic, avroRecord(`{"name":"a","type":"string"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bad",
		Schema: pulsar.NewAvroSchema(avroRecord(`{"name":"a","type":"string"}`, `{"name":"z","type":"int"}`), nil)})
	if err == nil || !strings.Contains(err.Error(), "reader field z is missing in writer schema") {
		t.Fatalf("consumer that cannot read the data: %v", err)
	}
	_, err = client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bad2", Schema: pulsar.NewStringSchema(nil)})
	if err == nil || !strings.Contains(err.Error(), "incompatible schema") {
		t.Fatalf("consumer with another schema type: %v", err)
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "ok",
		Schema: pulsar.NewAvroSchema(avroRecord(`{"name":"a","type":"string"}`, `{"name":"z","type":"int","default":0}`), nil)})
	if err != nil {
		t.Fatalf("consumer that can read the data: %v", err)
	}
	c.Close()
	// A consumer with a schema on a topic holding schema-less data is refused.
	plain := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: plain})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Subscribe(pulsar.ConsumerOptions{Topic: plain, SubscriptionName: "s", Schema: pulsar.NewAvroSchema(userDef, nil)})
	if err == nil || !strings.Contains(err.Error(), "does not have a schema") {
		t.Fatalf("consumer with a schema on a schema-less busy topic: %v", err)
	}
}

// TestSchemaVersionsDecode: messages written with two versions are each
// decoded with their own version, fetched by number (GET_SCHEMA).
func TestSchemaVersionsDecode(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	topic := uniqueTopic(t)
	v0 := `{"type":"record","name":"V","fields":[{"name":"a","type":"string"}]}`
	v1 := `{"type":"record","name":"V","fields":[{"name":"a","type":"string"},{"name":"n","type":"int","default":0}]}`
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	type rec0 struct {
		A string `avro:"a"`
	}
	type rec1 struct {
		A string `avro:"a"`
		N int    `avro:"n"`
	}
	for i, step := range []struct {
		def string
		val any
	}{{v0, rec0{"first"}}, {v1, rec1{"second", 5}}} {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(step.def, nil)})
		if err != nil {
			t.Fatalf("version %d: %v", i, err)
		}
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Value: step.val}); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	msgs := receiveN(t, consumer, 2, 10*time.Second)
	var r0 rec0
	if err := msgs[0].GetSchemaValue(&r0); err != nil || r0.A != "first" {
		t.Fatalf("message of version 0: %+v %v", r0, err)
	}
	var r1 rec1
	if err := msgs[1].GetSchemaValue(&r1); err != nil || r1 != (rec1{"second", 5}) {
		t.Fatalf("message of version 1: %+v %v", r1, err)
	}
	if msgs[1].SchemaVersion()[7] != 1 {
		t.Fatalf("second message's version %x", msgs[1].SchemaVersion())
	}
	for v, def := range []string{v0, v1} {
		info, err := admin.Schemas().GetSchemaInfoByVersion(topic, int64(v))
		if want := pulsar.NewAvroSchema(def, nil).GetSchemaInfo().Schema; err != nil || string(info.Schema) != want {
			t.Fatalf("admin version %d: %s %v, want %s", v, info.Schema, err, want)
		}
	}
	all, err := admin.Schemas().GetAllSchemas(topic)
	if err != nil || len(all) != 2 || all[1].Version != 1 {
		t.Fatalf("all schemas: %v %v", all, err)
	}
}

// TestSchemaAdmin drives the registry with pulsaradmin: upload, read,
// version lookup, compatibility, delete; and the namespace policies JSON.
func TestSchemaAdmin(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	ns := newNamespace(t, admin)
	topic := "persistent://" + ns + "/admin"
	v0 := avroRecord(`{"name":"a","type":"string"}`)
	payload := utils.PostSchemaPayload{SchemaType: "AVRO", Schema: v0, Properties: map[string]string{"owner": "team-a"}}
	if err := admin.Schemas().CreateSchemaByPayload(topic, payload); err != nil {
		t.Fatal(err)
	}
	// The same schema again is the same version.
	if err := admin.Schemas().CreateSchemaByPayload(topic, payload); err != nil {
		t.Fatal(err)
	}
	info, err := admin.Schemas().GetSchemaInfoWithVersion(topic)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 0 || info.SchemaInfo.Type != "AVRO" || string(info.SchemaInfo.Schema) != v0 || info.SchemaInfo.Properties["owner"] != "team-a" {
		t.Fatalf("uploaded schema reads back as %+v %+v", info, info.SchemaInfo)
	}
	if v, err := admin.Schemas().GetVersionByPayload(topic, payload); err != nil || v != 0 {
		t.Fatalf("version by payload: %d %v", v, err)
	}
	// A producer with the uploaded schema gets its version.
	if err := avroProducer(client, topic, v0); err != nil {
		t.Fatal(err)
	}
	res, err := admin.Schemas().TestCompatibilityWithPostSchemaPayload(topic, utils.PostSchemaPayload{SchemaType: "AVRO",
		Schema: avroRecord(`{"name":"a","type":"int"}`)})
	if err != nil || res.IsCompatibility || res.SchemaCompatibilityStrategy != "FULL" {
		t.Fatalf("incompatible change: %+v %v", res, err)
	}
	err = admin.Schemas().CreateSchemaByPayload(topic, utils.PostSchemaPayload{SchemaType: "AVRO", Schema: avroRecord(`{"name":"a","type":"int"}`)})
	expectStatus(t, err, 409, "incompatible upload")
	if err := admin.Schemas().DeleteSchema(topic); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Schemas().GetSchemaInfo(topic)
	expectStatus(t, err, 404, "schema after delete")
	// After a deletion anything goes, and versions go on from the marker.
	if err := admin.Schemas().CreateSchemaByPayload(topic, utils.PostSchemaPayload{SchemaType: "STRING"}); err != nil {
		t.Fatal(err)
	}
	if info, err := admin.Schemas().GetSchemaInfoWithVersion(topic); err != nil || info.Version != 2 || info.SchemaInfo.Type != "STRING" {
		t.Fatalf("schema after delete and upload: %+v %v", info, err)
	}
	// A deletion hides the versions before it, as in Pulsar.
	_, err = admin.Schemas().GetSchemaInfoByVersion(topic, 0)
	expectStatus(t, err, 404, "version 0 after delete")
	if err := admin.Schemas().ForceDeleteSchema(topic); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Schemas().GetSchemaInfoByVersion(topic, 2)
	expectStatus(t, err, 404, "version 2 after force delete")

	// Policies show in the namespace's policies with their defaults.
	body := expectHTTP(t, "GET", s.WebURL()+"/admin/v2/namespaces/"+ns, "", 200)
	for _, want := range []string{`"schema_compatibility_strategy":"UNDEFINED"`, `"is_allow_auto_update_schema":true`, `"schema_validation_enforced":false`} {
		if !strings.Contains(body, want) {
			t.Fatalf("namespace policies %s lack %s", body, want)
		}
	}
	if st, err := admin.Namespaces().GetSchemaCompatibilityStrategy(nsName(t, ns)); err != nil || st != "UNDEFINED" {
		t.Fatalf("default strategy: %v %v, want UNDEFINED (the broker default FULL applies)", st, err)
	}
	setStrategy(t, admin, ns, utils.SchemaCompatibilityStrategyBackwardTransitive)
	body = expectHTTP(t, "GET", s.WebURL()+"/admin/v2/namespaces/"+ns, "", 200)
	if !strings.Contains(body, `"schema_compatibility_strategy":"BACKWARD_TRANSITIVE"`) {
		t.Fatalf("namespace policies %s", body)
	}
	if err := admin.Namespaces().SetSchemaCompatibilityStrategy(nsName(t, ns), utils.SchemaCompatibilityStrategyUndefined); err != nil {
		t.Fatal(err)
	}
	if st, _ := admin.Namespaces().GetSchemaCompatibilityStrategy(nsName(t, ns)); st != "UNDEFINED" {
		t.Fatalf("UNDEFINED reads back as %s", st)
	}

	metrics := expectHTTP(t, "GET", s.WebURL()+"/metrics", "", 200)
	for _, want := range []string{`mb_schema_registrations_total{result="created"}`, `mb_schema_registrations_total{result="existing"}`, "mb_schema_incompatible_total"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

// TestSchemaRESTBadInput: malformed bodies, unknown types, invalid Avro
// and bad strategies get 4xx with a reason.
func TestSchemaRESTBadInput(t *testing.T) {
	s := startServer(t, server.Options{})
	base := s.WebURL() + "/admin/v2/schemas/public/default/bad-input"
	expectHTTP(t, "POST", base+"/schema", `{"type":`, 400)
	expectHTTP(t, "POST", base+"/schema", ``, 400)
	expectHTTP(t, "POST", base+"/schema", `{"schema":"x"}`, 400)
	if body := expectHTTP(t, "POST", base+"/schema", `{"type":"XML","schema":""}`, 400); !strings.Contains(body, "unknown schema type") {
		t.Fatalf("unknown type: %s", body)
	}
	if body := expectHTTP(t, "POST", base+"/schema", `{"type":"AVRO","schema":"{\"type\":\"record\"}"}`, 422); !strings.Contains(body, "not a valid Avro definition") {
		t.Fatalf("invalid Avro: %s", body)
	}
	expectHTTP(t, "POST", base+"/schema", `{"type":"JSON","schema":"not json"}`, 422)
	expectHTTP(t, "POST", base+"/compatibility", `{"type":"AVRO","schema":"nope"}`, 422)
	expectHTTP(t, "GET", base+"/schema", "", 404)
	expectHTTP(t, "GET", base+"/schema/abc", "", 400)
	expectHTTP(t, "GET", base+"/schema/3", "", 404)
	expectHTTP(t, "DELETE", base+"/schema", "", 404)
	expectHTTP(t, "GET", s.WebURL()+"/admin/v2/schemas/public/nope/t/schema", "", 404)
	ns := s.WebURL() + "/admin/v2/namespaces/public/default/"
	if body := expectHTTP(t, "PUT", ns+"schemaCompatibilityStrategy", `"SIDEWAYS"`, 400); !strings.Contains(body, "unknown schema compatibility strategy") {
		t.Fatalf("bad strategy: %s", body)
	}
	expectHTTP(t, "POST", ns+"isAllowAutoUpdateSchema", `"yes"`, 400)
	expectHTTP(t, "POST", ns+"schemaValidationEnforced", ``, 400)
	// Pulsar's reasons, word for word.
	if body := expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/public/nothere/schemaCompatibilityStrategy", `"FULL"`, 404); !strings.Contains(body, `"Namespace does not exist"`) {
		t.Fatalf("missing namespace: %s", body)
	}
	if body := expectHTTP(t, "POST", s.WebURL()+"/admin/v2/namespaces/nobody/ns/isAllowAutoUpdateSchema", `true`, 404); !strings.Contains(body, `"Tenant does not exist"`) {
		t.Fatalf("missing tenant: %s", body)
	}
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/public/bad-strategy", `{"schema_compatibility_strategy":"SIDEWAYS"}`, 400)
}

// TestSchemaPartitionedAndDeleted: the partitions of a partitioned topic
// share one schema, which goes with the topic.
func TestSchemaPartitionedAndDeleted(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 3); err != nil {
		t.Fatal(err)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(userDef, nil)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Value: avroUser{"p", i}, Key: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	all, err := admin.Schemas().GetAllSchemas(topic)
	if err != nil || len(all) != 1 {
		t.Fatalf("a partitioned topic's producer registered %d versions (%v), want 1", len(all), err)
	}
	for _, name := range []string{topic, topic + "-partition-2"} {
		if info, err := admin.Schemas().GetSchemaInfo(name); err != nil || string(info.Schema) != pulsar.NewAvroSchema(userDef, nil).GetSchemaInfo().Schema {
			t.Fatalf("schema of %s: %v %v", name, info, err)
		}
	}
	_, err = client.CreateProducer(pulsar.ProducerOptions{Topic: topic + "-partition-1", Schema: pulsar.NewStringSchema(nil)})
	if err == nil || !strings.Contains(err.Error(), "incompatible schema") {
		t.Fatalf("a partition with another schema: %v", err)
	}
	if err := admin.Topics().Delete(topicName(t, topic), true, false); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Schemas().GetSchemaInfo(topic)
	expectStatus(t, err, 404, "schema of the deleted partitioned topic")

	plain := uniqueTopic(t)
	if err := avroProducer(client, plain, userDef); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().Delete(topicName(t, plain), true, true); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Schemas().GetSchemaInfo(plain)
	expectStatus(t, err, 404, "schema of the deleted topic")
	// A new topic of the same name starts with no schema.
	if p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: plain, Schema: pulsar.NewStringSchema(nil)}); err != nil {
		t.Fatalf("new topic of a deleted one's name: %v", err)
	} else {
		p.Close()
	}
}

// TestSchemaDeadLetterAndRetry: the client creates DLQ and retry
// producers with the consumer's schema; the messages arrive decodable.
func TestSchemaDeadLetterAndRetry(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	dlq := topic + "-dlq"
	sch := func() pulsar.Schema { return pulsar.NewAvroSchema(userDef, nil) }
	dlqConsumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "dlq", Schema: sch(),
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer dlqConsumer.Close()
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, Schema: sch(),
		RetryEnable: true, DLQ: &pulsar.DLQPolicy{MaxDeliveries: 2, DeadLetterTopic: dlq}})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: sch()})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Value: avroUser{"poison", 13}}); err != nil {
		t.Fatal(err)
	}
	// The client moves a message to the DLQ when reconsumed more than
	// MaxDeliveries times.
	for i := 0; i < 3; i++ {
		m := receiveN(t, consumer, 1, 10*time.Second)[0]
		var u avroUser
		if err := m.GetSchemaValue(&u); err != nil || u.Name != "poison" {
			t.Fatalf("delivery %d: %+v %v", i, u, err)
		}
		consumer.ReconsumeLater(m, 10*time.Millisecond)
	}
	m := receiveN(t, dlqConsumer, 1, 20*time.Second)[0]
	var u avroUser
	if err := m.GetSchemaValue(&u); err != nil || u != (avroUser{"poison", 13}) {
		t.Fatalf("dead letter: %+v %v", u, err)
	}
	dlqConsumer.Ack(m)
}

// TestTransactionsNotSupported: a client asking for transactions fails at
// once with the error Pulsar gives when the coordinator is disabled.
func TestTransactionsNotSupported(t *testing.T) {
	s := startServer(t, server.Options{})
	start := time.Now()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), EnableTransaction: true, OperationTimeout: 30 * time.Second, Logger: nopLogger()})
	if err == nil {
		c.Close()
		t.Fatal("client with transactions created")
	}
	if !strings.Contains(err.Error(), "The broker doesn't enable the transaction coordinator") {
		t.Fatalf("error %q", err)
	}
	t.Logf("error: %v", err)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing took %v", d)
	}
}

// TestCLIAdminSchemas drives `mb admin schemas` against a broker.
func TestCLIAdminSchemas(t *testing.T) {
	s := startServer(t, server.Options{})
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v0 := avroRecord(`{"name":"a","type":"string"}`)
	v1 := avroRecord(`{"name":"a","type":"string"}`, `{"name":"b","type":"int","default":1}`)
	file := func(name, def string) string {
		b, _ := json.Marshal(map[string]any{"type": "AVRO", "schema": def, "properties": map[string]string{"k": "v"}})
		return write(name, string(b))
	}
	topic := "persistent://public/default/cli-schemas"
	out := adminCLI(t, s, "schemas", "upload", topic, "--filename", file("v0.json", v0)).ok(t)
	if !strings.Contains(out, "version") || !strings.Contains(out, "0") {
		t.Fatalf("upload printed %q", out)
	}
	adminCLI(t, s, "schemas", "upload", "cli-schemas", "-f", file("v1.json", v1)).ok(t)
	var got struct {
		Version    int64
		Type       string
		Data       string
		Properties map[string]string
	}
	adminCLI(t, s, "-o", "json", "schemas", "get", topic).jsonOf(t, &got)
	if got.Version != 1 || got.Type != "AVRO" || got.Data != v1 || got.Properties["k"] != "v" {
		t.Fatalf("schemas get: %+v", got)
	}
	adminCLI(t, s, "-o", "json", "schemas", "get", topic, "--version", "0").jsonOf(t, &got)
	if got.Version != 0 || got.Data != v0 {
		t.Fatalf("schemas get --version 0: %+v", got)
	}
	list := adminCLI(t, s, "schemas", "list", topic).ok(t)
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION") {
		t.Fatalf("schemas list: %q", list)
	}
	var compat map[string]any
	adminCLI(t, s, "-o", "json", "schemas", "compatibility", topic, "-f", file("bad.json", avroRecord(`{"name":"a","type":"int"}`))).jsonOf(t, &compat)
	if compat["compatibility"] != false || compat["schemaCompatibilityStrategy"] != "FULL" {
		t.Fatalf("schemas compatibility: %v", compat)
	}
	adminCLI(t, s, "schemas", "upload", topic, "-f", file("bad2.json", avroRecord(`{"name":"a","type":"int"}`))).fails(t, "incompatible schema")
	adminCLI(t, s, "schemas", "upload", topic, "-f", write("junk.json", "{")).fails(t, "is not a schema definition file")
	adminCLI(t, s, "schemas", "upload", topic, "-f", write("notype.json", `{"schema":"x"}`)).fails(t, `has no "type"`)
	adminCLI(t, s, "schemas", "upload", topic, "-f", write("badavro.json", `{"type":"AVRO","schema":"{}"}`)).fails(t, "not a valid Avro definition")
	adminCLI(t, s, "schemas", "upload", topic).fails(t, "--filename is required")
	adminCLI(t, s, "schemas", "delete", topic).ok(t)
	adminCLI(t, s, "schemas", "get", topic).fails(t, "schema not found")
}

// TestCLIAdminSchemaPolicies drives the namespace schema policy commands.
func TestCLIAdminSchemaPolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	adminCLI(t, s, "namespaces", "create", "public/sp").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-schema-compatibility-strategy", "public/sp").ok(t); !strings.Contains(out, "UNDEFINED") {
		t.Fatalf("default strategy: %q", out)
	}
	adminCLI(t, s, "namespaces", "set-schema-compatibility-strategy", "public/sp", "--compatibility", "backward").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-schema-compatibility-strategy", "public/sp").ok(t); !strings.Contains(out, "BACKWARD") {
		t.Fatalf("strategy: %q", out)
	}
	adminCLI(t, s, "namespaces", "set-schema-compatibility-strategy", "public/sp", "-c", "SIDEWAYS").fails(t, "invalid --compatibility")
	adminCLI(t, s, "namespaces", "set-is-allow-auto-update-schema", "public/sp", "--disable").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-is-allow-auto-update-schema", "public/sp").ok(t); !strings.Contains(out, "false") {
		t.Fatalf("auto update: %q", out)
	}
	adminCLI(t, s, "namespaces", "set-schema-validation-enforce", "public/sp", "--enable").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-schema-validation-enforce", "public/sp").ok(t); !strings.Contains(out, "true") {
		t.Fatalf("validation: %q", out)
	}
	var p map[string]any
	adminCLI(t, s, "-o", "json", "namespaces", "policies", "public/sp").jsonOf(t, &p)
	if p["schema_compatibility_strategy"] != "BACKWARD" || p["is_allow_auto_update_schema"] != false || p["schema_validation_enforced"] != true {
		t.Fatalf("policies: %v", p)
	}
}

// TestSchemaTopicPolicies: a topic's own schemaCompatibilityStrategy and
// schemaValidationEnforced take precedence over the namespace's.
func TestSchemaTopicPolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	setStrategy(t, admin, ns, utils.SchemaCompatibilityStrategyFull)
	topic := "persistent://" + ns + "/tp"
	tn := topicName(t, topic)
	if err := admin.Topics().Create(tn, 2); err != nil {
		t.Fatal(err)
	}
	if st, err := admin.Topics().GetSchemaCompatibilityStrategyApplied(tn, false); err != nil || st != "UNDEFINED" {
		t.Fatalf("topic's own strategy: %v %v", st, err)
	}
	if st, err := admin.Topics().GetSchemaCompatibilityStrategy(tn); err != nil || st != "FULL" {
		t.Fatalf("applied strategy: %v %v", st, err)
	}
	if err := avroProducer(client, topic, avroRecord(`{"name":"a","type":"string"}`)); err != nil {
		t.Fatal(err)
	}
	changed := avroRecord(`{"name":"a","type":"int"}`)
	if err := avroProducer(client, topic, changed); err == nil {
		t.Fatal("incompatible change accepted under FULL")
	}
	if err := admin.Topics().SetSchemaCompatibilityStrategy(tn, utils.SchemaCompatibilityStrategyAlwaysCompatible); err != nil {
		t.Fatal(err)
	}
	if st, err := admin.Topics().GetSchemaCompatibilityStrategyApplied(tn, false); err != nil || st != "ALWAYS_COMPATIBLE" {
		t.Fatalf("topic's own strategy: %v %v", st, err)
	}
	if err := avroProducer(client, topic+"-partition-1", changed); err != nil {
		t.Fatalf("change under the topic's ALWAYS_COMPATIBLE: %v", err)
	}
	if err := admin.Topics().RemoveSchemaCompatibilityStrategy(tn); err != nil {
		t.Fatal(err)
	}
	if st, err := admin.Topics().GetSchemaCompatibilityStrategy(tn); err != nil || st != "FULL" {
		t.Fatalf("applied strategy after remove: %v %v", st, err)
	}
	if err := admin.Topics().SetSchemaValidationEnforced(tn, true); err != nil {
		t.Fatal(err)
	}
	if on, err := admin.Topics().GetSchemaValidationEnforced(tn); err != nil || !on {
		t.Fatalf("topic validation: %v %v", on, err)
	}
	if _, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "schema_validation_enforced") {
		t.Fatalf("producer without schema on the enforcing topic: %v", err)
	}
	if err := admin.Topics().RemoveSchemaValidationEnforced(tn); err != nil {
		t.Fatal(err)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatalf("producer without schema after remove: %v", err)
	}
	p.Close()
	expectHTTP(t, "PUT", restTopic(s.WebURL(), topic)+"/schemaCompatibilityStrategy", `"SIDEWAYS"`, 400)
}
