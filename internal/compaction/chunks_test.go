package compaction

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/wire"
)

// chunkOf is chunk id of num of message uuid, keyed key.
func chunkOf(uuid, key string, id, num int32) []byte {
	md := baseMeta()
	md.PartitionKey = proto.String(key)
	md.Uuid = proto.String(uuid)
	md.ChunkId = proto.Int32(id)
	md.NumChunksFromMsg = proto.Int32(num)
	md.TotalChunkMsgSize = proto.Int32(num * 10)
	return wire.BuildPayload(md, []byte("0123456789"))
}

// keptIDs returns the topic entry ids the compacted ledger holds.
func keptIDs(t *testing.T, l ledger.Ledger) []int64 {
	t.Helper()
	var ids []int64
	for cid := int64(0); cid <= l.LastEntryID(); cid++ {
		e, err := ReadEntry(context.Background(), l, cid)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// TestCompactKeepsChunksOfLatestValue: all chunks of a key's latest value
// are kept (interleaved with another message's chunks), older chunked
// values, chunked values overwritten or tombstoned, and incomplete
// messages are not; a message incomplete at the horizon keeps its chunks,
// and the next compaction completes it.
func TestCompactKeepsChunksOfLatestValue(t *testing.T) {
	s := memory.New()
	defer s.Close()
	topic, _ := s.Open(context.Background(), "persistent://t/n/chunks")
	appendAll(t, topic,
		chunkOf("u1", "a", 0, 2), // 0: a's old value
		chunkOf("u1", "a", 1, 2), // 1
		chunkOf("u2", "a", 0, 3), // 2: a's latest, interleaved with u3
		chunkOf("u3", "b", 0, 2), // 3: b, then overwritten unchunked
		chunkOf("u2", "a", 1, 3), // 4
		chunkOf("u3", "b", 1, 2), // 5
		chunkOf("u2", "a", 2, 3), // 6
		single(msg{"b", "b2"}),   // 7
		chunkOf("u4", "c", 0, 2), // 8: c, then tombstoned
		chunkOf("u4", "c", 1, 2), // 9
		single(msg{"c", ""}),     // 10
		chunkOf("u5", "d", 1, 2), // 11: d's first chunk lost: incomplete
		chunkOf("u6", "e", 0, 2), // 12: e incomplete at the horizon
	)
	out, res := compact(t, s, topic, nil, -1, "__compacted/1")
	if got, want := keptIDs(t, out), []int64{2, 4, 6, 7, 12}; !slices.Equal(got, want) {
		t.Fatalf("kept entries %v, want %v", got, want)
	}
	if res.Kept != 2 { // a (chunked) and b; e is not complete yet
		t.Fatalf("kept %d messages, want 2", res.Kept)
	}
	appendAll(t, topic, chunkOf("u6", "e", 1, 2)) // 13: e completes
	out2, _ := compact(t, s, topic, out, 12, "__compacted/2")
	if got, want := keptIDs(t, out2), []int64{2, 4, 6, 7, 12, 13}; !slices.Equal(got, want) {
		t.Fatalf("second compaction kept %v, want %v", got, want)
	}
}
