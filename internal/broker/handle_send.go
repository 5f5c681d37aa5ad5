package broker

import (
	"errors"
	"fmt"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Publishing.
//
//	SEND (6), parsed without allocating (wire.ParseSend): producer_id,
//	  sequence_id, num_messages, highest_sequence_id (batches); the checksum
//	  and MessageMetadata of the payload (chunking from it). Answered
//	  SEND_RECEIPT (ledger id, entry id; -1:-1 for a deduplicated
//	  duplicate) or SEND_ERROR: ChecksumError, NotAllowedError (malformed,
//	  larger than the max message size; chunks are exempt),
//	  TopicTerminatedError, PersistenceError (storage failure, disk full),
//	  UnknownError (the same sequence id still being stored). A SEND for an
//	  unknown producer closes the connection. Ignored: is_chunk and
//	  marker (parsed; the metadata tells), txnid_*.

// handleSend is the publish hot path. Failures that concern one message are
// answered with SEND_ERROR and the connection keeps serving; a send for an
// unknown producer is a protocol violation and closes the connection.
func (c *conn) handleSend(f *wire.Frame) error {
	var sf wire.SendFields
	if err := wire.ParseSend(f.Raw, &sf); err != nil {
		return fmt.Errorf("decode SEND: %w", err)
	}
	c.mu.Lock()
	p := c.producers[sf.ProducerID]
	c.mu.Unlock()
	if p == nil {
		c.writeCommand(errorCommand(0, pb.ServerError_NotAllowedError, fmt.Sprintf("send for unknown producer %d", sf.ProducerID)))
		return errors.New("send for unknown producer")
	}
	if p.streamBroken.Load() {
		c.sendError(sf, pb.ServerError_UnknownError, errStreamBroken)
		return nil
	}
	hp := f.HeadersAndPayload
	if err := wire.VerifyChecksum(hp); err != nil {
		c.b.metrics.checksumErrors.Inc()
		c.sendError(sf, pb.ServerError_ChecksumError, "checksum mismatch: message not stored")
		return nil
	}
	meta, payload, err := wire.SplitPayload(hp)
	var md wire.MetadataInfo
	if err == nil {
		err = wire.ParseMetadata(meta, &md)
	}
	if err != nil {
		c.sendError(sf, pb.ServerError_NotAllowedError, "malformed message: "+err.Error())
		return nil
	}
	// The size that counts is metadata + payload, as clients compute it.
	// Chunks are exempt: clients size them to the limit before adding the
	// chunk fields, and the frame limit still bounds them.
	if size := len(meta) + len(payload); size > c.b.cfg.MaxMessageSize && md.NumChunksFromMsg <= 1 {
		c.sendError(sf, pb.ServerError_NotAllowedError,
			fmt.Sprintf("message of %d bytes exceeds the max message size of %d bytes", size, c.b.cfg.MaxMessageSize))
		return nil
	}
	if lim := p.topic.maxMessageSize.Load(); lim > 0 && int64(len(meta)+len(payload)) > lim && md.NumChunksFromMsg <= 1 {
		c.b.metrics.limits.refused.WithLabelValues("max_message_size").Inc()
		// Pulsar's words, then the numbers.
		c.sendError(sf, pb.ServerError_NotAllowedError,
			fmt.Sprintf("Exceed maximum message size: message of %d bytes, the topic's maxMessageSize is %d bytes", len(meta)+len(payload), lim))
		return nil
	}
	if err := p.topic.delivery.checkDelay(&md); err != nil {
		c.sendError(sf, pb.ServerError_NotAllowedError, err.Error())
		return nil
	}
	if md.HasMarkerType && md.ReplicatedFrom == nil {
		// Markers move subscriptions: only the broker writes them, and
		// replicators copy them (replicated_from set).
		c.sendError(sf, pb.ServerError_NotAllowedError, "a message with marker_type is accepted only from a replicator (replicated_from set): markers are written by the broker")
		return nil
	}
	var rs *replSource
	if md.ReplicatedFrom != nil {
		p.sentReplicated.Store(true)
		if !c.mayReplicate() {
			c.sendError(sf, pb.ServerError_NotAllowedError, fmt.Sprintf(
				"role %q may not publish replicated messages (replicated_from set): only superusers and replicator roles (--replicator-roles) may", c.role()))
			return nil
		}
		if rs, err = replicatedSource(meta); err != nil {
			c.sendError(sf, pb.ServerError_NotAllowedError, "malformed replicated message: "+err.Error())
			return nil
		}
		rs.marker = md.HasMarkerType
	}
	if !c.throttlePublish(p.topic, max(int(md.NumMessagesInBatch), 1), len(hp)) {
		return nil
	}
	if !p.begin() {
		c.log.Debug("dropping send for a producer closed by the broker", "producer", p.name, "sequence_id", sf.SequenceID)
		return nil
	}
	p.topic.publish(p, &sf, hp, rs)
	return nil
}

func (c *conn) sendError(sf wire.SendFields, code pb.ServerError, msg string) {
	c.breakReplicationStream(sf.ProducerID)
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_SEND_ERROR.Enum(),
		SendError: &pb.CommandSendError{
			ProducerId: proto.Uint64(sf.ProducerID),
			SequenceId: proto.Uint64(sf.SequenceID),
			Error:      code.Enum(),
			Message:    proto.String(msg),
		},
	})
}

// sendReceipt queues the receipt of a stored message.
func (c *conn) sendReceipt(sf *wire.SendFields, ledgerID, entryID int64) {
	highest := sf.SequenceID
	if sf.HasHighestSequenceID {
		highest = sf.HighestSequenceID
	}
	pid, seq := sf.ProducerID, sf.SequenceID
	c.write(func(b []byte) []byte { return wire.AppendSendReceipt(b, pid, seq, highest, ledgerID, entryID) })
}

func (c *conn) appendStarted() { c.inflight.Add(1) }
func (c *conn) appendDone()    { c.inflight.Done() }
