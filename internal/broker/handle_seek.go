package broker

import (
	"context"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Seeking a subscription.
//
//	SEEK (28): message_id (older ledgers and Earliest: the first entry;
//	  newer ones and Latest: the end) or message_publish_time (the first
//	  entry published at or after it). Answered SUCCESS, then the
//	  subscription's consumers are closed and subscribe again at the new
//	  position. Errors: ConsumerNotFound, NotAllowedError (non-persistent
//	  topic, neither field set), PersistenceError (reading for the time).
//	  A read-compacted subscription seeking to the start goes to the
//	  compacted view's start.

// handleSeek resets the subscription's cursor to a message id or a publish
// time, answers SUCCESS, then closes the subscription's consumers: the client
// expects that and subscribes again, receiving from the new position.
func (c *conn) handleSeek(cmd *pb.CommandSeek) {
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_ConsumerNotFound, "consumer not found"))
		return
	}
	s := cs.sub
	t := s.topic
	if t.ledger == nil {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_NotAllowedError, "seek is not supported on non-persistent topics"))
		return
	}
	ctx, cancel := c.requestCtx()
	defer cancel()
	var target int64
	switch {
	case cmd.MessageId != nil:
		target = seekTarget(t, cmd.GetMessageId())
		if s.isReadCompacted() && int64(cmd.GetMessageId().GetLedgerId()) < t.ledgerID {
			target = t.earliestEntry(true) // earliest: the compacted view's start
		}
	case cmd.MessagePublishTime != nil:
		var err error
		if target, err = findByPublishTime(ctx, t.ledger, cmd.GetMessagePublishTime()); err != nil {
			c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_PersistenceError, "seek by time: "+err.Error()))
			return
		}
		if s.isReadCompacted() && target <= t.ledger.FirstEntryID() {
			target = t.earliestEntry(true) // the view covers what retention trimmed
		}
	default:
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_NotAllowedError, "seek needs a message id or a publish time"))
		return
	}
	consumers := s.resetCursor(target)
	c.writeCommand(successCommand(cmd.GetRequestId()))
	for _, x := range consumers {
		x.closeByBroker()
	}
}

// seekTarget maps a message id to the first entry to deliver: ids of older
// ledgers mean the beginning, of newer ones the end.
func seekTarget(t *Topic, mid *pb.MessageIdData) int64 {
	lid, eid := int64(mid.GetLedgerId()), int64(mid.GetEntryId())
	switch {
	case lid < t.ledgerID || lid < 0:
		return t.ledger.FirstEntryID()
	case lid > t.ledgerID:
		return t.ledger.LastEntryID() + 1
	}
	return eid
}

// findByPublishTime returns the first entry published at or after ts (ms),
// by binary search: entries are appended in publish-time order.
func findByPublishTime(ctx context.Context, l ledger.Ledger, ts uint64) (int64, error) {
	return findByPublishTimeFrom(ctx, l, l.FirstEntryID(), ts)
}

// findByPublishTimeFrom is findByPublishTime searching from entry lo on
// (offload uses it to read local entries only).
func findByPublishTimeFrom(ctx context.Context, l ledger.Ledger, lo int64, ts uint64) (int64, error) {
	hi := l.LastEntryID() + 1
	for lo < hi {
		mid := lo + (hi-lo)/2
		es, err := l.Read(ctx, mid, 1, 0)
		if err != nil {
			return 0, err
		}
		if len(es) == 0 {
			hi = mid
			continue
		}
		if md, ok := entryMetadata(es[0].Data); ok && md.PublishTime >= ts {
			hi = mid
		} else {
			// Entries between mid and es[0].ID are lost: none to probe.
			lo = es[0].ID + 1
		}
	}
	return lo, nil
}
