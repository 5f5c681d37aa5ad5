package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// MetadataInfo holds what the broker reads from a MessageMetadata. Byte
// slices alias the parsed bytes and are nil when the field is absent.
type MetadataInfo struct {
	ProducerName       []byte
	SequenceID         uint64
	PublishTime        uint64
	PartitionKey       []byte
	PartitionKeyB64    bool
	OrderingKey        []byte
	NumMessagesInBatch int32 // 1 when absent
	// HasNumMessagesInBatch is set when the field is present, which is how
	// a client marks a batch, even a batch of one.
	HasNumMessagesInBatch bool
	EventTime             uint64
	DeliverAtTime         int64 // unix millis; 0 unless HasDeliverAtTime
	HasDeliverAtTime      bool
	Compression           pb.CompressionType
	UncompressedSize      uint32
	HighestSequenceID     uint64
	UUID                  []byte
	ChunkID               int32
	NumChunksFromMsg      int32
	TotalChunkMsgSize     int32
	NullValue             bool
	ReplicatedFrom        []byte
	// MarkerType is set (HasMarkerType) on server-only marker entries
	// (markers.go), which are never delivered to clients.
	MarkerType    int32
	HasMarkerType bool
}

// MessageMetadata field numbers read by ParseMetadata.
const (
	fieldMetaProducerName     = 1
	fieldMetaSequenceID       = 2
	fieldMetaPublishTime      = 3
	fieldMetaReplicatedFrom   = 5
	fieldMetaPartitionKey     = 6
	fieldMetaCompression      = 8
	fieldMetaUncompressedSize = 9
	fieldMetaNumInBatch       = 11
	fieldMetaEventTime        = 12
	fieldMetaPartitionKeyB64  = 17
	fieldMetaOrderingKey      = 18
	fieldMetaDeliverAtTime    = 19
	fieldMetaMarkerType       = 20
	fieldMetaHighestSeq       = 24
	fieldMetaNullValue        = 25
	fieldMetaUUID             = 26
	fieldMetaNumChunks        = 27
	fieldMetaTotalChunkSize   = 28
	fieldMetaChunkID          = 29
)

// ParseMetadata resets info and fills it from an encoded MessageMetadata
// without allocating. It follows proto.Unmarshal's rules: the last occurrence
// of a field wins, a field with the wrong wire type is ignored, an unknown
// compression value is kept (check it), and a missing required field
// (producer_name, sequence_id, publish_time) is an error. The fields it does
// not read are only checked for well-formed framing.
func ParseMetadata(meta []byte, info *MetadataInfo) error {
	*info = MetadataInfo{NumMessagesInBatch: 1}
	var hasName, hasSeq, hasTime bool
	for b := meta; len(b) > 0; {
		num, wt, n, err := consumeTag(b)
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		b = b[n:]
		switch {
		case wt == wireVarint && isMetaVarint(num):
			v, n, err := consumeVarint(b)
			if err != nil {
				return fmt.Errorf("metadata field %d: %w", num, err)
			}
			b = b[n:]
			switch num {
			case fieldMetaSequenceID:
				info.SequenceID, hasSeq = v, true
			case fieldMetaPublishTime:
				info.PublishTime, hasTime = v, true
			case fieldMetaCompression:
				// Kept even when unknown, as proto.Unmarshal does (protobuf-go
				// treats proto2 enums as open); the caller must reject it.
				info.Compression = pb.CompressionType(int32(v))
			case fieldMetaUncompressedSize:
				info.UncompressedSize = uint32(v)
			case fieldMetaNumInBatch:
				info.NumMessagesInBatch, info.HasNumMessagesInBatch = int32(v), true
			case fieldMetaEventTime:
				info.EventTime = v
			case fieldMetaPartitionKeyB64:
				info.PartitionKeyB64 = v != 0
			case fieldMetaDeliverAtTime:
				info.DeliverAtTime, info.HasDeliverAtTime = int64(v), true
			case fieldMetaHighestSeq:
				info.HighestSequenceID = v
			case fieldMetaNullValue:
				info.NullValue = v != 0
			case fieldMetaNumChunks:
				info.NumChunksFromMsg = int32(v)
			case fieldMetaTotalChunkSize:
				info.TotalChunkMsgSize = int32(v)
			case fieldMetaChunkID:
				info.ChunkID = int32(v)
			case fieldMetaMarkerType:
				info.MarkerType, info.HasMarkerType = int32(v), true
			}
		case wt == wireBytes && isMetaBytes(num):
			v, n, err := consumeBytes(b)
			if err != nil {
				return fmt.Errorf("metadata field %d: %w", num, err)
			}
			b = b[n:]
			switch num {
			case fieldMetaProducerName:
				info.ProducerName, hasName = v, true
			case fieldMetaReplicatedFrom:
				info.ReplicatedFrom = v
			case fieldMetaPartitionKey:
				info.PartitionKey = v
			case fieldMetaOrderingKey:
				info.OrderingKey = v
			case fieldMetaUUID:
				info.UUID = v
			}
		default:
			n, err := skipField(num, wt, b)
			if err != nil {
				return fmt.Errorf("metadata field %d: %w", num, err)
			}
			b = b[n:]
		}
	}
	switch {
	case !hasName:
		return fmt.Errorf("metadata has no producer_name: %w", ErrMalformed)
	case !hasSeq:
		return fmt.Errorf("metadata has no sequence_id: %w", ErrMalformed)
	case !hasTime:
		return fmt.Errorf("metadata has no publish_time: %w", ErrMalformed)
	}
	return nil
}

func isMetaVarint(num protowire.Number) bool {
	switch num {
	case fieldMetaSequenceID, fieldMetaPublishTime, fieldMetaCompression,
		fieldMetaUncompressedSize, fieldMetaNumInBatch, fieldMetaEventTime,
		fieldMetaPartitionKeyB64, fieldMetaDeliverAtTime, fieldMetaHighestSeq,
		fieldMetaNullValue, fieldMetaNumChunks, fieldMetaTotalChunkSize,
		fieldMetaChunkID, fieldMetaMarkerType:
		return true
	}
	return false
}

func isMetaBytes(num protowire.Number) bool {
	switch num {
	case fieldMetaProducerName, fieldMetaReplicatedFrom, fieldMetaPartitionKey,
		fieldMetaOrderingKey, fieldMetaUUID:
		return true
	}
	return false
}
