package admin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// writeMessage answers a peek or get-by-id as Pulsar does: the payload,
// decompressed, is the body (a batch stays in its wire layout, which the
// clients split); the metadata goes in X-Pulsar-* headers. Properties are in
// X-Pulsar-Property as a JSON object, the form that keeps their case.
func (s *Server) writeMessage(w http.ResponseWriter, m broker.Message) {
	metaBytes, payload, err := wire.SplitPayload(m.Data)
	var md pb.MessageMetadata
	if err == nil {
		err = proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(metaBytes, &md)
	}
	if err != nil {
		s.internalError(w, fmt.Errorf("stored message %d:%d is malformed: %w", m.ID.LedgerID, m.ID.EntryID, err))
		return
	}
	body, err := decompress(&md, payload)
	if err != nil {
		s.internalError(w, fmt.Errorf("stored message %d:%d: %w", m.ID.LedgerID, m.ID.EntryID, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Pulsar-Message-ID", position(m.ID.LedgerID, m.ID.EntryID))
	if len(md.Properties) > 0 {
		props := make(map[string]string, len(md.Properties))
		for _, kv := range md.Properties {
			props[kv.GetKey()] = kv.GetValue()
		}
		j, _ := json.Marshal(props)
		h.Set("X-Pulsar-Property", string(j))
	}
	if md.PublishTime != nil {
		h.Set("X-Pulsar-Publish-Time", formatMillis(int64(md.GetPublishTime())))
	}
	if md.GetEventTime() != 0 {
		h.Set("X-Pulsar-Event-Time", formatMillis(int64(md.GetEventTime())))
	}
	if md.DeliverAtTime != nil {
		h.Set("X-Pulsar-Deliver-At-Time", formatMillis(md.GetDeliverAtTime()))
	}
	if md.NumMessagesInBatch != nil {
		h.Set("X-Pulsar-Num-Batch-Message", strconv.Itoa(int(md.GetNumMessagesInBatch())))
		h.Set("X-Pulsar-Batch-Size", strconv.Itoa(len(payload)))
	}
	if md.NullValue != nil {
		h.Set("X-Pulsar-Null-Value", strconv.FormatBool(md.GetNullValue()))
	}
	if md.NumChunksFromMsg != nil {
		h.Set("X-Pulsar-Num-Chunks-From-Msg", strconv.Itoa(int(md.GetNumChunksFromMsg())))
		h.Set("X-Pulsar-Total-Chunk-Msg-Size", strconv.Itoa(int(md.GetTotalChunkMsgSize())))
		h.Set("X-Pulsar-Chunk-Id", strconv.Itoa(int(md.GetChunkId())))
	}
	h.Set("X-Pulsar-Is-Encrypted", strconv.FormatBool(len(md.EncryptionKeys) > 0))
	set := func(name string, present bool, value string) {
		if present {
			h.Set(name, value)
		}
	}
	set("X-Pulsar-Producer-Name", md.ProducerName != nil, md.GetProducerName())
	set("X-Pulsar-Sequence-Id", md.SequenceId != nil, strconv.FormatUint(md.GetSequenceId(), 10))
	set("X-Pulsar-Highest-Sequence-Id", md.HighestSequenceId != nil, strconv.FormatUint(md.GetHighestSequenceId(), 10))
	set("X-Pulsar-Replicated-From", md.ReplicatedFrom != nil, md.GetReplicatedFrom())
	set("X-Pulsar-Partition-Key", md.PartitionKey != nil, md.GetPartitionKey())
	set("X-Pulsar-Partition-Key-B64-Encoded", md.PartitionKeyB64Encoded != nil, strconv.FormatBool(md.GetPartitionKeyB64Encoded()))
	set("X-Pulsar-Base64-Ordering-Key", md.OrderingKey != nil, base64.StdEncoding.EncodeToString(md.OrderingKey))
	set("X-Pulsar-Base64-Schema-Version", md.SchemaVersion != nil, base64.StdEncoding.EncodeToString(md.SchemaVersion))
	set("X-Pulsar-Compression", md.Compression != nil, md.GetCompression().String())
	set("X-Pulsar-Uncompressed-Size", md.UncompressedSize != nil, strconv.FormatUint(uint64(md.GetUncompressedSize()), 10))
	set("X-Pulsar-Encryption-Algo", md.EncryptionAlgo != nil, md.GetEncryptionAlgo())
	set("X-Pulsar-Uuid", md.Uuid != nil, md.GetUuid())
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// formatMillis prints a unix-millisecond time as Pulsar's DateFormatter does (ISO 8601).
func formatMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// decompress undoes the payload compression of the metadata, with the
// codecs and framing of Pulsar's clients. Encrypted payloads stay as they are.
func decompress(md *pb.MessageMetadata, payload []byte) ([]byte, error) {
	if len(md.EncryptionKeys) > 0 {
		return payload, nil
	}
	return wire.Decompress(md.GetCompression(), payload, int(md.GetUncompressedSize()))
}
