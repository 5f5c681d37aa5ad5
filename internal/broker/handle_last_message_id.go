package broker

import (
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// The last message id, for readers' HasNext and seek by id.
//
//	GET_LAST_MESSAGE_ID (29): consumer_id, request_id. Answered
//	  GET_LAST_MESSAGE_ID_RESPONSE with last_message_id (entry -1 when the
//	  topic is empty; batch_index of the last message of a batch; partition)
//	  and consumer_mark_delete_position; for a read-compacted consumer with
//	  nothing past the compaction horizon, the compacted view's last message.
//	  Error: ConsumerNotFound.

// noEntry is entry id -1 as the uint64 the wire carries.
const noEntry = ^uint64(0)

// handleGetLastMessageID reports the last stored message, with the batch
// index of its last message when the entry is a batch (readers' HasNext
// compares down to the batch index), and the subscription's mark-delete
// position.
func (c *conn) handleGetLastMessageID(cmd *pb.CommandGetLastMessageId) {
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_ConsumerNotFound, "consumer not found"))
		return
	}
	t := cs.sub.topic
	last := &pb.MessageIdData{LedgerId: proto.Uint64(uint64(t.ledgerID)), EntryId: proto.Uint64(noEntry)}
	markDelete := &pb.MessageIdData{LedgerId: proto.Uint64(uint64(t.ledgerID)), EntryId: proto.Uint64(noEntry)}
	if t.ledger != nil {
		ctx, cancel := c.requestCtx()
		defer cancel()
		if id := t.lastMessageEntry(); id >= 0 {
			last.EntryId = proto.Uint64(uint64(id))
			if es, err := t.ledger.Read(ctx, id, 1, 0); err == nil && len(es) == 1 {
				if md, ok := entryMetadata(es[0].Data); ok && md.HasNumMessagesInBatch {
					last.BatchIndex = proto.Int32(md.NumMessagesInBatch - 1)
				}
			}
		}
		if v := t.compactedView(); v.l != nil && cs.sub.isReadCompacted() && t.ledger.LastEntryID() <= v.horizon {
			// Nothing after the horizon: the last message a read-compacted
			// consumer gets is the view's (HasNext must not wait for a
			// message compaction removed).
			entry, index := t.lastCompactedMessage(ctx, v)
			last.EntryId, last.BatchIndex = proto.Uint64(uint64(entry)), nil
			if index >= 0 {
				last.BatchIndex = proto.Int32(index)
			}
		}
		markDelete.EntryId = proto.Uint64(uint64(cs.sub.markDelete()))
	}
	if idx := t.name.PartitionIndex(); idx >= 0 {
		last.Partition = proto.Int32(int32(idx))
	}
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_GET_LAST_MESSAGE_ID_RESPONSE.Enum(),
		GetLastMessageIdResponse: &pb.CommandGetLastMessageIdResponse{
			RequestId:                  proto.Uint64(cmd.GetRequestId()),
			LastMessageId:              last,
			ConsumerMarkDeletePosition: markDelete,
		},
	})
}
