package broker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Schema registry commands and the schema checks of PRODUCER and SUBSCRIBE.
//
//	GET_SCHEMA (34): topic, optional schema_version (8 bytes big-endian);
//	  answered with GET_SCHEMA_RESPONSE, error_code TopicNotFound when the
//	  topic has no schema or not that version.
//	GET_OR_CREATE_SCHEMA (39): the producer path of a schema (auto update,
//	  strategy); GET_OR_CREATE_SCHEMA_RESPONSE with schema_version or
//	  error_code IncompatibleSchema.
//
// A partition uses its partitioned topic's schema, as in Pulsar.

// schemaTimeout bounds the metadata reads and writes of one schema decision.
const schemaTimeout = 10 * time.Second

// schemaPolicy reads the namespace's schema policies from the store, not
// the cache: a policy just changed must apply to the next producer, and
// creating producers and consumers is rare next to sending.
// The topic's own policies take precedence. A failed read is an error,
// never the defaults (which could let an incompatible schema in).
func (b *Broker) schemaPolicy(ctx context.Context, t naming.Topic) (schema.Policy, error) {
	p, err := b.meta.Namespace(ctx, t.Namespace)
	if err != nil {
		return schema.Policy{}, b.metadataError("namespace", err)
	}
	tp, err := b.meta.TopicPolicies(ctx, t)
	if errors.Is(err, meta.ErrNotFound) {
		tp = meta.TopicPolicies{}
	} else if err != nil {
		return schema.Policy{}, b.metadataError("topic_policies", err)
	}
	return schema.PolicyOf(tp.Over(p)), nil
}

// producerSchema decides the schema of a producer and returns its version
// (schema.NoVersion when it brought none).
func (c *conn) producerSchema(ctx context.Context, t naming.Topic, s *pb.Schema) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, schemaTimeout)
	defer cancel()
	var info *schema.Info
	if s != nil {
		i := schema.FromProto(s)
		info = &i
	}
	pol, err := c.b.schemaPolicy(ctx, t)
	if err != nil {
		return 0, err
	}
	return c.b.schemas.ForProducer(ctx, t, info, pol)
}

// consumerSchema decides the schema of a consumer; the topic is idle (its
// schema may be set by the consumer) when it has no producer and no data.
func (c *conn) consumerSchema(ctx context.Context, tp *Topic, t naming.Topic, s *pb.Schema) error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, schemaTimeout)
	defer cancel()
	info := schema.FromProto(s)
	tp.mu.Lock()
	idle := len(tp.producers) == 0
	tp.mu.Unlock()
	if idle && tp.ledger != nil {
		idle = tp.ledger.Entries() == 0
	}
	pol, err := c.b.schemaPolicy(ctx, t)
	if err != nil {
		return err
	}
	return c.b.schemas.ForConsumer(ctx, t, &info, pol, idle)
}

func (c *conn) handleGetSchema(ctx context.Context, cmd *pb.CommandGetSchema) {
	resp := &pb.CommandGetSchemaResponse{RequestId: proto.Uint64(cmd.GetRequestId())}
	fail := func(code pb.ServerError, msg string) {
		resp.ErrorCode = code.Enum()
		resp.ErrorMessage = proto.String(msg)
	}
	t, err := naming.ParseTopic(cmd.GetTopic())
	if err == nil {
		err = c.authorizeLookup(ctx, t)
	}
	if err != nil {
		fail(serverError(err), err.Error())
	} else if v := cmd.GetSchemaVersion(); v != nil && len(v) == 0 {
		// An empty version is what producers without a schema put in
		// their messages (GET_OR_CREATE_SCHEMA answered no version): such
		// messages are plain bytes.
		resp.Schema = &pb.Schema{Name: proto.String(t.Partitioned().Local), SchemaData: []byte{}, Type: pb.Schema_None.Enum()}
		resp.SchemaVersion = []byte{}
	} else if v != nil {
		var n int64
		if n, err = schema.DecodeVersion(v); err != nil {
			fail(pb.ServerError_InvalidTopicName, err.Error())
		} else if rec, err := c.b.schemas.Version(ctx, t, n); err != nil {
			fail(serverError(err), err.Error())
		} else {
			resp.Schema, resp.SchemaVersion = recordProto(t, rec), schema.EncodeVersion(rec.Version)
		}
	} else if rec, err := c.b.schemas.Latest(ctx, t); err != nil {
		fail(serverError(err), err.Error())
	} else {
		resp.Schema, resp.SchemaVersion = recordProto(t, rec), schema.EncodeVersion(rec.Version)
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: resp})
}

func (c *conn) handleGetOrCreateSchema(ctx context.Context, cmd *pb.CommandGetOrCreateSchema) {
	resp := &pb.CommandGetOrCreateSchemaResponse{RequestId: proto.Uint64(cmd.GetRequestId())}
	t, err := naming.ParseTopic(cmd.GetTopic())
	if err == nil {
		err = c.authorizeProduce(ctx, t)
	}
	var v int64
	if err == nil {
		v, err = c.producerSchema(ctx, t, cmd.GetSchema())
	}
	if err != nil {
		err = requestError(ctx, err)
		resp.ErrorCode = serverError(err).Enum()
		resp.ErrorMessage = proto.String(err.Error())
	} else if v != schema.NoVersion {
		resp.SchemaVersion = schema.EncodeVersion(v)
	} else {
		resp.SchemaVersion = []byte{}
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp})
}

// recordProto is a stored version as the protocol carries it.
func recordProto(t naming.Topic, rec meta.SchemaRecord) *pb.Schema {
	props := make([]*pb.KeyValue, 0, len(rec.Properties))
	for _, k := range slices.Sorted(maps.Keys(rec.Properties)) {
		props = append(props, &pb.KeyValue{Key: proto.String(k), Value: proto.String(rec.Properties[k])})
	}
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	return &pb.Schema{Name: proto.String(t.Partitioned().Local), SchemaData: data, Type: schema.Type(rec.Type).Wire().Enum(), Properties: props}
}
