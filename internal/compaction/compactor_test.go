package compaction

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// msg is a test message: key "" means none.
type msg struct{ key, value string }

func baseMeta() *pb.MessageMetadata {
	return &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1)}
}

func single(m msg) []byte {
	md := baseMeta()
	if m.key != "" {
		md.PartitionKey = proto.String(m.key)
	}
	return wire.BuildPayload(md, []byte(m.value))
}

func batch(t testing.TB, codec pb.CompressionType, ms ...msg) []byte {
	var body []byte
	for _, m := range ms {
		smm := &pb.SingleMessageMetadata{PayloadSize: proto.Int32(int32(len(m.value)))}
		if m.key != "" {
			smm.PartitionKey = proto.String(m.key)
		}
		b, _ := proto.Marshal(smm)
		body = binary.BigEndian.AppendUint32(body, uint32(len(b)))
		body = append(body, b...)
		body = append(body, m.value...)
	}
	c, err := wire.Compress(codec, body)
	if err != nil {
		t.Fatal(err)
	}
	md := baseMeta()
	md.NumMessagesInBatch = proto.Int32(int32(len(ms)))
	md.Compression = codec.Enum()
	md.UncompressedSize = proto.Uint32(uint32(len(body)))
	return wire.BuildPayload(md, c)
}

func appendAll(t testing.TB, l ledger.Ledger, entries ...[]byte) {
	t.Helper()
	done := make(chan error, len(entries))
	for _, e := range entries {
		l.Append(e, func(_ int64, err error) { done <- err })
	}
	for range entries {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// viewOf reads a compacted ledger as a reader would: key → "entry:index=value".
func viewOf(t testing.TB, l ledger.Ledger) map[string]string {
	t.Helper()
	out := map[string]string{}
	prev := int64(-1)
	for cid := int64(0); cid <= l.LastEntryID(); cid++ {
		e, err := ReadEntry(context.Background(), l, cid)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID <= prev {
			t.Fatalf("compacted entries out of order: %d after %d", e.ID, prev)
		}
		prev = e.ID
		meta, payload, _ := wire.SplitPayload(e.Data)
		var info wire.MetadataInfo
		if err := wire.ParseMetadata(meta, &info); err != nil {
			t.Fatal(err)
		}
		if !info.HasNumMessagesInBatch {
			out[string(info.PartitionKey)] = fmt.Sprintf("%d:0=%s", e.ID, payload)
			continue
		}
		body, err := wire.Decompress(info.Compression, payload, int(info.UncompressedSize))
		if err != nil {
			t.Fatal(err)
		}
		err = wire.ForEachBatchMessage(body, int(info.NumMessagesInBatch), func(i int, raw, data []byte) error {
			var smm pb.SingleMessageMetadata
			if err := proto.Unmarshal(raw, &smm); err != nil {
				return err
			}
			if !e.Survives(i) {
				if !smm.GetCompactedOut() && len(data) > 0 {
					// a survivor of nothing must be a placeholder or an original kept whole
					if e.Mask == nil {
						t.Errorf("entry %d message %d outside a nil mask", e.ID, i)
					}
				}
				return nil
			}
			out[smm.GetPartitionKey()] = fmt.Sprintf("%d:%d=%s", e.ID, i, data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func compact(t testing.TB, s *memory.Store, topic ledger.Ledger, prev ledger.Ledger, prevHorizon int64, name string) (ledger.Ledger, Result) {
	t.Helper()
	out, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compact(context.Background(), Input{Topic: topic, Previous: prev, PreviousHorizon: prevHorizon, Horizon: topic.LastEntryID()}, out)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	for _, codec := range []pb.CompressionType{pb.CompressionType_NONE, pb.CompressionType_LZ4,
		pb.CompressionType_ZLIB, pb.CompressionType_ZSTD, pb.CompressionType_SNAPPY} {
		t.Run(codec.String(), func(t *testing.T) {
			s := memory.New()
			defer s.Close()
			topic, _ := s.Open(context.Background(), "persistent://t/n/x")
			appendAll(t, topic,
				single(msg{"a", "a1"}),    // 0
				single(msg{"b", "b1"}),    // 1
				single(msg{"", "no key"}), // 2
				batch(t, codec, msg{"c", "c1"}, msg{"a", "a2"}, msg{"", "nk"}, msg{"d", "d1"}), // 3
				single(msg{"b", ""}), // 4: tombstone
				batch(t, codec, msg{"d", "d2"}, msg{"e", ""}, msg{"f", "f1"}), // 5
				single(msg{"e", "e1"}), // 6
			)
			out, res := compact(t, s, topic, nil, -1, "c1")
			want := map[string]string{"a": "3:1=a2", "c": "3:0=c1", "d": "5:0=d2", "f": "5:2=f1", "e": "6:0=e1"}
			if got := viewOf(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("view %v, want %v", got, want)
			}
			if res.Kept != 5 || res.Removed != 7 || res.Entries != 3 || res.Horizon != 6 {
				t.Fatalf("result %+v", res)
			}

			// Incremental: the next compaction reads the view plus the new entries.
			appendAll(t, topic,
				batch(t, codec, msg{"a", ""}, msg{"g", "g1"}), // 7: deletes a
				single(msg{"c", "c2"}),                        // 8
			)
			topic.Trim(7) // retention may drop what the view covers
			out2, _ := compact(t, s, topic, out, 6, "c2")
			want = map[string]string{"c": "8:0=c2", "d": "5:0=d2", "f": "5:2=f1", "e": "6:0=e1", "g": "7:1=g1"}
			if got := viewOf(t, out2); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("second view %v, want %v", got, want)
			}
		})
	}
}

func TestCompactNothingNew(t *testing.T) {
	s := memory.New()
	defer s.Close()
	topic, _ := s.Open(context.Background(), "persistent://t/n/x")
	out, res := compact(t, s, topic, nil, -1, "c1")
	if res.Entries != 0 || out.LastEntryID() != -1 || res.Horizon != -1 {
		t.Fatalf("empty topic compacted to %+v", res)
	}
}

func TestSeekAndLastIndex(t *testing.T) {
	s := memory.New()
	defer s.Close()
	l, _ := s.Open(context.Background(), "c")
	for _, id := range []int64{3, 7, 9} {
		appendAll(t, l, EncodeEntry(Entry{ID: id, Mask: []int64{0b101}, Data: []byte("x")}))
	}
	for from, want := range map[int64]int64{0: 0, 3: 0, 4: 1, 9: 2, 10: 3} {
		got, err := Seek(context.Background(), l, from)
		if err != nil || got != want {
			t.Fatalf("Seek(%d) = %d, %v; want %d", from, got, err, want)
		}
	}
	e, _ := ReadEntry(context.Background(), l, 1)
	if e.ID != 7 || e.LastIndex(3) != 2 || !e.Survives(0) || e.Survives(1) || string(e.Data) != "x" {
		t.Fatalf("decoded %+v", e)
	}
	if (Entry{}).LastIndex(4) != 3 {
		t.Fatal("a nil mask means every message")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(Entry{ID: 5, Mask: []int64{1}, Data: []byte("d")}))
	f.Add([]byte{1, 0, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		e2, err := DecodeEntry(EncodeEntry(e))
		if err != nil || e2.ID != e.ID || len(e2.Mask) != len(e.Mask) || string(e2.Data) != string(e.Data) {
			t.Fatalf("round trip of %+v gave %+v, %v", e, e2, err)
		}
	})
}

// A key deleted by a tombstone must not resurrect its message at entry 0,
// index 0 (the zero position).
func TestCompactTombstoneOfFirstMessage(t *testing.T) {
	s := memory.New()
	defer s.Close()
	topic, _ := s.Open(context.Background(), "persistent://t/n/x")
	appendAll(t, topic, batch(t, pb.CompressionType_LZ4, msg{"a", "a1"}, msg{"b", "b1"}), single(msg{"a", ""}))
	out, _ := compact(t, s, topic, nil, -1, "c1")
	if got := viewOf(t, out); fmt.Sprint(got) != fmt.Sprint(map[string]string{"b": "0:1=b1"}) {
		t.Fatalf("view %v", got)
	}
}
