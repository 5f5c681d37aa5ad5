package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// The encoders skip the required-field check: failing it would leave only
// dropping the frame or panicking, while a frame missing a field makes the
// peer fail loudly and costs just that connection. UseCachedSize reuses the
// Size computed just before marshalling.
var (
	sizeOpts    = proto.MarshalOptions{AllowPartial: true}
	marshalOpts = proto.MarshalOptions{AllowPartial: true, UseCachedSize: true}
)

// appendMarshal appends [u32 totalSize placeholder][u32 size][m] to dst and
// returns it with the offset of the placeholder. extra is how many more bytes
// the caller will append, so that dst grows only once.
func appendMarshal(dst []byte, m proto.Message, extra int) ([]byte, int) {
	n := sizeOpts.Size(m)
	dst = slices.Grow(dst, 8+n+extra)
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = mustMarshalAppend(dst, m)
	binary.BigEndian.PutUint32(dst[at+4:], uint32(len(dst)-at-8))
	return dst, at
}

// mustMarshalAppend appends m, whose size was just computed with sizeOpts.
func mustMarshalAppend(dst []byte, m proto.Message) []byte {
	dst, err := marshalOpts.MarshalAppend(dst, m)
	if err != nil {
		// Unreachable for proto2 messages with AllowPartial: no UTF-8 or
		// required-field validation is left to fail.
		panic(fmt.Sprintf("wire: marshal %T: %v", m, err))
	}
	return dst
}

// AppendCommand appends a simple frame holding cmd to dst and returns it.
// Required fields are not checked; set them, or the peer will reject the
// frame.
func AppendCommand(dst []byte, cmd *pb.BaseCommand) []byte {
	dst, at := appendMarshal(dst, cmd, 0)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst
}

// AppendPayloadCommand appends a frame holding cmd followed by hp (copied
// verbatim, so it must already carry its magic and checksum) to dst.
func AppendPayloadCommand(dst []byte, cmd *pb.BaseCommand, hp []byte) []byte {
	dst, at := appendMarshal(dst, cmd, len(hp))
	dst = append(dst, hp...)
	total := len(dst) - at - 4
	if uint64(total) > math.MaxUint32 {
		panic(fmt.Sprintf("wire: frame of %d bytes does not fit the protocol", total))
	}
	binary.BigEndian.PutUint32(dst[at:], uint32(total))
	return dst
}

// Field numbers used by the hand encoders; they must match pulsar_api.proto
// (the tests compare against proto.Marshal).
const (
	fieldBaseType        = 1
	fieldBaseSendReceipt = 7 // BaseCommand.send_receipt
	fieldBaseMessage     = 9 // BaseCommand.message

	fieldIDLedger = 1 // MessageIdData.ledgerId
	fieldIDEntry  = 2 // MessageIdData.entryId

	fieldReceiptProducerID = 1
	fieldReceiptSequenceID = 2
	fieldReceiptMessageID  = 3
	fieldReceiptHighestSeq = 4

	fieldMessageConsumerID = 1
	fieldMessageID         = 2
	fieldMessageRedelivery = 3
	fieldMessageAckSet     = 4
)

// sizeVarintField is the encoded size of a varint field numbered below 16.
func sizeVarintField(v uint64) int { return 1 + protowire.SizeVarint(v) }

// sizeBytesField is the encoded size of a length-delimited field numbered
// below 16 holding n bytes.
func sizeBytesField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func appendVarintField(dst []byte, num protowire.Number, v uint64) []byte {
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

func appendBytesHeader(dst []byte, num protowire.Number, n int) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendVarint(dst, uint64(n))
}

// sizeMessageID is the size of MessageIdData{ledgerId, entryId}.
func sizeMessageID(ledgerID, entryID int64) int {
	return sizeVarintField(uint64(ledgerID)) + sizeVarintField(uint64(entryID))
}

func appendMessageID(dst []byte, num protowire.Number, ledgerID, entryID int64, size int) []byte {
	dst = appendBytesHeader(dst, num, size)
	dst = appendVarintField(dst, fieldIDLedger, uint64(ledgerID))
	return appendVarintField(dst, fieldIDEntry, uint64(entryID))
}

// AppendSendReceipt appends a SEND_RECEIPT frame to dst: producer_id,
// sequence_id, message_id{ledgerId, entryId} and highest_sequence_id, which is
// always written (pass sequenceID when the send carried none). It allocates
// nothing when dst has room.
func AppendSendReceipt(dst []byte, producerID, sequenceID, highestSequenceID uint64, ledgerID, entryID int64) []byte {
	idSize := sizeMessageID(ledgerID, entryID)
	receiptSize := sizeVarintField(producerID) + sizeVarintField(sequenceID) +
		sizeBytesField(idSize) + sizeVarintField(highestSequenceID)
	cmdSize := sizeVarintField(uint64(pb.BaseCommand_SEND_RECEIPT)) + sizeBytesField(receiptSize)

	dst = slices.Grow(dst, 8+cmdSize)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+cmdSize))
	dst = binary.BigEndian.AppendUint32(dst, uint32(cmdSize))
	dst = appendVarintField(dst, fieldBaseType, uint64(pb.BaseCommand_SEND_RECEIPT))
	dst = appendBytesHeader(dst, fieldBaseSendReceipt, receiptSize)
	dst = appendVarintField(dst, fieldReceiptProducerID, producerID)
	dst = appendVarintField(dst, fieldReceiptSequenceID, sequenceID)
	dst = appendMessageID(dst, fieldReceiptMessageID, ledgerID, entryID, idSize)
	return appendVarintField(dst, fieldReceiptHighestSeq, highestSequenceID)
}

// AppendMessage appends a MESSAGE frame to dst: consumer_id,
// message_id{ledgerId, entryId} (partition and batch_index unset),
// redelivery_count when non-zero, ack_set when non-empty, then hp verbatim.
// It allocates nothing when dst has room.
func AppendMessage(dst []byte, consumerID uint64, ledgerID, entryID int64, redeliveryCount uint32, ackSet []int64, hp []byte) []byte {
	idSize := sizeMessageID(ledgerID, entryID)
	msgSize := sizeVarintField(consumerID) + sizeBytesField(idSize)
	if redeliveryCount != 0 {
		msgSize += sizeVarintField(uint64(redeliveryCount))
	}
	for _, w := range ackSet { // proto2 repeated scalars are not packed
		msgSize += sizeVarintField(uint64(w))
	}
	cmdSize := sizeVarintField(uint64(pb.BaseCommand_MESSAGE)) + sizeBytesField(msgSize)
	total := 4 + cmdSize + len(hp)
	if uint64(total) > math.MaxUint32 {
		panic(fmt.Sprintf("wire: frame of %d bytes does not fit the protocol", total))
	}

	dst = slices.Grow(dst, 4+total)
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(cmdSize))
	dst = appendVarintField(dst, fieldBaseType, uint64(pb.BaseCommand_MESSAGE))
	dst = appendBytesHeader(dst, fieldBaseMessage, msgSize)
	dst = appendVarintField(dst, fieldMessageConsumerID, consumerID)
	dst = appendMessageID(dst, fieldMessageID, ledgerID, entryID, idSize)
	if redeliveryCount != 0 {
		dst = appendVarintField(dst, fieldMessageRedelivery, uint64(redeliveryCount))
	}
	for _, w := range ackSet {
		dst = appendVarintField(dst, fieldMessageAckSet, uint64(w))
	}
	return append(dst, hp...)
}

// BuildPayload returns a fresh hp = [0x0e01][crc32c][metaSize][meta][payload],
// as a client would send it. Required fields of meta are not checked.
func BuildPayload(meta *pb.MessageMetadata, payload []byte) []byte {
	n := sizeOpts.Size(meta)
	hp := make([]byte, 10, 10+n+len(payload))
	binary.BigEndian.PutUint16(hp, MagicCrc32c)
	hp = mustMarshalAppend(hp, meta)
	binary.BigEndian.PutUint32(hp[6:], uint32(len(hp)-10))
	hp = append(hp, payload...)
	binary.BigEndian.PutUint32(hp[2:], crc32c(hp[6:]))
	return hp
}
