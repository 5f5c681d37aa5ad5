package compaction

import (
	"encoding/binary"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// message is what compaction needs of one message of an entry.
type message struct {
	index int
	// key aliases the entry's (decompressed) bytes: compaction looks keys
	// up without copying them and copies only a key new to its map.
	key    []byte
	hasKey bool
	// tombstone: keyed with an empty payload (or flagged null_value).
	tombstone bool
}

// chunk is what compaction needs of a chunk of a large message: each
// chunk is an entry carrying the message's key, and the message is
// complete at its last chunk (id num-1).
type chunk struct {
	uuid    string
	id, num int32
	key     string
	hasKey  bool
}

// parsedEntry is an entry split into its messages.
type parsedEntry struct {
	batch    bool
	messages []message // survivors of a previous compaction only
	// chunk is set for a chunk of a large message (messages is empty).
	chunk *chunk
	// for rebatching: the decoded batch (nil for a single message)
	md      *pb.MessageMetadata
	smms    [][]byte
	payload [][]byte
}

// parser splits entries into their messages, reusing its buffers from
// one entry to the next: a compaction reads every entry of the topic twice,
// and what it allocates per entry triggers garbage collections, whose
// stop-the-world pauses and mark assists publishing pays for.
type parser struct {
	scratch []byte // decompressed batches, one at a time
	p       parsedEntry
	md      pb.MessageMetadata
}

// parse splits e into its messages, skipping those a previous compaction
// removed. keep asks for what rebatching needs. The result aliases the
// parser's buffers (and a compressed batch's decompressed bytes) until the
// next call.
func (ps *parser) parse(e Entry, keep bool) (*parsedEntry, error) {
	meta, payload, err := wire.SplitPayload(e.Data)
	if err != nil {
		return nil, err
	}
	var info wire.MetadataInfo
	if err := wire.ParseMetadata(meta, &info); err != nil {
		return nil, err
	}
	p := &ps.p
	clear(p.messages) // drop the previous entry's key references
	clear(p.smms)
	clear(p.payload)
	*p = parsedEntry{batch: info.HasNumMessagesInBatch, messages: p.messages[:0], smms: p.smms[:0], payload: p.payload[:0]}
	if info.NumChunksFromMsg > 1 {
		p.chunk = &chunk{uuid: string(info.UUID), id: info.ChunkID, num: info.NumChunksFromMsg,
			key: string(info.PartitionKey), hasKey: info.PartitionKey != nil}
		return p, nil
	}
	if !p.batch {
		empty := len(payload) == 0 || (info.Compression != pb.CompressionType_NONE && info.UncompressedSize == 0)
		if e.Survives(0) {
			p.messages = append(p.messages, message{index: 0, key: info.PartitionKey,
				hasKey: info.PartitionKey != nil, tombstone: empty || info.NullValue})
		}
		return p, nil
	}
	body, err := wire.DecompressTo(ps.scratch, info.Compression, payload, int(info.UncompressedSize))
	if err != nil {
		return nil, fmt.Errorf("batch payload: %w", err)
	}
	if info.Compression != pb.CompressionType_NONE {
		ps.scratch = body
	}
	// Sized for the batch up front (bounded: the count is the client's word).
	n := min(int(max(info.NumMessagesInBatch, 0)), 4096)
	p.messages = slices.Grow(p.messages, n)
	if keep {
		p.smms, p.payload = slices.Grow(p.smms, n), slices.Grow(p.payload, n)
		proto.Reset(&ps.md)
		p.md = &ps.md
		if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(meta, p.md); err != nil {
			return nil, fmt.Errorf("message metadata: %w", err)
		}
	}
	var smm wire.SingleInfo
	err = wire.ForEachBatchMessage(body, int(info.NumMessagesInBatch), func(i int, raw, data []byte) error {
		if keep {
			p.smms = append(p.smms, raw)
			p.payload = append(p.payload, data)
		}
		if !e.Survives(i) {
			return nil
		}
		if err := wire.ParseSingleMetadata(raw, &smm); err != nil {
			return fmt.Errorf("batch message %d: %w", i, err)
		}
		if smm.CompactedOut {
			return nil
		}
		p.messages = append(p.messages, message{index: i, key: smm.PartitionKey, hasKey: smm.PartitionKey != nil,
			tombstone: len(data) == 0 || smm.NullValue})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// placeholder is the single message metadata of a removed batch message.
var placeholder = func() []byte {
	b, err := proto.Marshal(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(0), CompactedOut: proto.Bool(true)})
	if err != nil {
		panic(err)
	}
	return b
}()

// rebatch rewrites a batch with only the messages in mask, the others
// replaced by empty compacted_out placeholders, recompressed with the
// batch's codec; the rest of the metadata is kept.
func rebatch(p *parsedEntry, mask []int64) ([]byte, error) {
	var body []byte
	for i, smm := range p.smms {
		if mask[i/64]&(1<<(i%64)) != 0 {
			body = binary.BigEndian.AppendUint32(body, uint32(len(smm)))
			body = append(body, smm...)
			body = append(body, p.payload[i]...)
			continue
		}
		body = binary.BigEndian.AppendUint32(body, uint32(len(placeholder)))
		body = append(body, placeholder...)
	}
	compressed, err := wire.Compress(p.md.GetCompression(), body)
	if err != nil {
		return nil, err
	}
	md := proto.CloneOf(p.md)
	if md.UncompressedSize != nil || md.GetCompression() != pb.CompressionType_NONE {
		md.UncompressedSize = proto.Uint32(uint32(len(body)))
	}
	return wire.BuildPayload(md, compressed), nil
}
