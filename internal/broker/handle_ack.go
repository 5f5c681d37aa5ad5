package broker

import (
	"time"

	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Flow control, acknowledgements and redelivery.
//
//	FLOW (11): message_permits added to the consumer's permits.
//	ACK (10): ack_type Individual or Cumulative (NotAllowedError on Shared
//	  and Key_Shared subscriptions), message_id with ack_set (batch index
//	  acks). With request_id (ack receipts) answered ACK_RESPONSE, with error
//	  and message when refused (ConsumerNotFound); without, nothing.
//	  Ignored: validation_error, properties, txnid_*. Acks on
//	  non-persistent topics are accepted and do nothing.
//	REDELIVER_UNACKNOWLEDGED_MESSAGES (20): message_ids (empty: all of the
//	  consumer's unacknowledged messages). No answer.

func (c *conn) consumer(id uint64) *Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consumers[id]
}

func (c *conn) handleFlow(cmd *pb.CommandFlow) {
	if cs := c.consumer(cmd.GetConsumerId()); cs != nil {
		cs.lastFlow.Store(time.Now().UnixMilli())
		cs.sub.flow(cs, cmd.GetMessagePermits())
	}
}

// handleAck applies acks; when the client asked for a receipt (request_id
// set) it gets ACK_RESPONSE, with the error if the ack was refused.
func (c *conn) handleAck(cmd *pb.CommandAck) {
	cs := c.consumer(cmd.GetConsumerId())
	var err error
	if cs == nil {
		err = newError(pb.ServerError_ConsumerNotFound, "consumer not found")
	} else if cs.sub.topic.ledger != nil {
		err = cs.sub.ack(cmd)
	}
	if cmd.RequestId == nil {
		if err != nil {
			c.log.Warn("ack refused", "err", err)
		}
		return
	}
	resp := &pb.CommandAckResponse{ConsumerId: proto.Uint64(cmd.GetConsumerId()), RequestId: proto.Uint64(cmd.GetRequestId())}
	if err != nil {
		resp.Error = serverError(err).Enum()
		resp.Message = proto.String(err.Error())
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_ACK_RESPONSE.Enum(), AckResponse: resp})
}

func (c *conn) handleRedeliver(cmd *pb.CommandRedeliverUnacknowledgedMessages) {
	if cs := c.consumer(cmd.GetConsumerId()); cs != nil && cs.sub.topic.ledger != nil {
		cs.sub.redeliver(cs, cmd.GetMessageIds())
	}
}
