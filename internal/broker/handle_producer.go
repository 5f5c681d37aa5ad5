package broker

import (
	"context"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Producer is one client producer attached to a topic.
type Producer struct {
	id    uint64
	name  string
	topic *Topic
	cn    *conn
}

func (c *conn) handleProducer(cmd *pb.CommandProducer) {
	reqID := cmd.GetRequestId()
	fail := func(err error) {
		c.writeCommand(errorCommand(reqID, serverError(err), err.Error()))
	}
	name, err := naming.ParseTopic(cmd.GetTopic())
	if err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	existing := c.producers[cmd.GetProducerId()]
	c.mu.Unlock()
	if existing != nil {
		if existing.topic.fullName != name.String() {
			fail(newError(pb.ServerError_ProducerBusy, "producer id already in use on this connection"))
			return
		}
		// The client retried a create that succeeded: answer it again.
		c.writeProducerSuccess(reqID, existing)
		return
	}
	t, err := c.b.getTopic(context.Background(), name)
	if err != nil {
		fail(err)
		return
	}
	p := &Producer{id: cmd.GetProducerId(), name: cmd.GetProducerName(), topic: t, cn: c}
	if p.name == "" {
		p.name = c.b.nextProducerName()
	}
	if err := t.addProducer(p); err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	c.producers[p.id] = p
	c.mu.Unlock()
	c.writeProducerSuccess(reqID, p)
}

func (c *conn) writeProducerSuccess(reqID uint64, p *Producer) {
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(),
		ProducerSuccess: &pb.CommandProducerSuccess{
			RequestId:      proto.Uint64(reqID),
			ProducerName:   proto.String(p.name),
			LastSequenceId: proto.Int64(-1),
			ProducerReady:  proto.Bool(true),
		},
	})
}

func (c *conn) handleCloseProducer(cmd *pb.CommandCloseProducer) {
	c.mu.Lock()
	p := c.producers[cmd.GetProducerId()]
	delete(c.producers, cmd.GetProducerId())
	c.mu.Unlock()
	if p != nil {
		p.topic.removeProducer(p)
	}
	c.writeCommand(successCommand(cmd.GetRequestId()))
}

// closeProducer is the broker-initiated close (topic deleted or unloaded):
// the client reconnects through a fresh lookup.
func (p *Producer) closeByBroker() {
	c := p.cn
	c.mu.Lock()
	if c.producers[p.id] == p {
		delete(c.producers, p.id)
	}
	c.mu.Unlock()
	c.writeCommand(&pb.BaseCommand{
		Type:          pb.BaseCommand_CLOSE_PRODUCER.Enum(),
		CloseProducer: &pb.CommandCloseProducer{ProducerId: proto.Uint64(p.id), RequestId: proto.Uint64(0)},
	})
}
