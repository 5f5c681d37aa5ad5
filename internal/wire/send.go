package wire

import (
	"fmt"
)

// SendFields is the part of CommandSend the publish path needs.
type SendFields struct {
	ProducerID           uint64
	SequenceID           uint64
	NumMessages          int32 // 1 when absent
	HighestSequenceID    uint64
	HasHighestSequenceID bool
	IsChunk              bool
	Marker               bool
}

// BaseCommand.send and the CommandSend fields ParseSend reads.
const (
	fieldBaseSend = 6

	fieldSendProducerID  = 1
	fieldSendSequenceID  = 2
	fieldSendNumMessages = 3
	fieldSendHighestSeq  = 6
	fieldSendIsChunk     = 7
	fieldSendMarker      = 8
)

// ParseSend fills f from the CommandSend inside raw, an encoded BaseCommand,
// without allocating. It follows proto.Unmarshal's rules (repeated occurrences
// merge, the last scalar wins, fields with the wrong wire type are ignored) and
// fails when send or its required producer_id and sequence_id are missing.
// It does not check BaseCommand.type, nor the fields it does not read.
func ParseSend(raw []byte, f *SendFields) error {
	*f = SendFields{NumMessages: 1}
	var found, hasProducer, hasSequence bool
	for b := raw; len(b) > 0; {
		num, wt, n, err := consumeTag(b)
		if err != nil {
			return fmt.Errorf("command: %w", err)
		}
		b = b[n:]
		if num != fieldBaseSend || wt != wireBytes {
			if n, err = skipField(num, wt, b); err != nil {
				return fmt.Errorf("command field %d: %w", num, err)
			}
			b = b[n:]
			continue
		}
		send, n, err := consumeBytes(b)
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		b = b[n:]
		found = true
		for len(send) > 0 {
			num, wt, n, err := consumeTag(send)
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			send = send[n:]
			if wt != wireVarint {
				if n, err = skipField(num, wt, send); err != nil {
					return fmt.Errorf("send field %d: %w", num, err)
				}
				send = send[n:]
				continue
			}
			v, n, err := consumeVarint(send)
			if err != nil {
				return fmt.Errorf("send field %d: %w", num, err)
			}
			send = send[n:]
			switch num {
			case fieldSendProducerID:
				f.ProducerID, hasProducer = v, true
			case fieldSendSequenceID:
				f.SequenceID, hasSequence = v, true
			case fieldSendNumMessages:
				f.NumMessages = int32(v)
			case fieldSendHighestSeq:
				f.HighestSequenceID, f.HasHighestSequenceID = v, true
			case fieldSendIsChunk:
				f.IsChunk = v != 0
			case fieldSendMarker:
				f.Marker = v != 0
			}
		}
	}
	switch {
	case !found:
		return fmt.Errorf("command has no send: %w", ErrMalformed)
	case !hasProducer:
		return fmt.Errorf("send has no producer_id: %w", ErrMalformed)
	case !hasSequence:
		return fmt.Errorf("send has no sequence_id: %w", ErrMalformed)
	}
	return nil
}
