package broker

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestReplDedupVerdicts(t *testing.T) {
	d := newReplDedup()
	src := func(c string, l, e int64) *replSource { return &replSource{cluster: c, pos: replPos{l, e}} }
	steps := []struct {
		s    *replSource
		want dedupVerdict
	}{
		{src("a", 5, 0), dedupNew},
		{src("a", 5, 0), dedupInFlight},
		{src("b", 1, 9), dedupNew}, // clusters are independent
	}
	for i, st := range steps {
		if got := d.check(st.s); got != st.want {
			t.Fatalf("step %d: %v, want %v", i, got, st.want)
		}
	}
	d.stored(src("a", 5, 0), 0, nil)
	if got := d.check(src("a", 5, 0)); got != dedupDuplicate {
		t.Fatalf("stored position: %v", got)
	}
	if got := d.check(src("a", 4, 99)); got != dedupDuplicate {
		t.Fatalf("older ledger: %v", got)
	}
	if got := d.check(src("a", 6, 0)); got != dedupNew {
		t.Fatalf("newer ledger: %v", got)
	}
	// A failed append of 5:2 while 5:3 (sent after it) got stored lets
	// the resend of 5:2 in, once.
	d = newReplDedup()
	d.check(src("a", 5, 2))
	d.check(src("a", 5, 3))
	d.stored(src("a", 5, 3), 1, nil)
	d.stored(src("a", 5, 2), -1, context.Canceled)
	if got := d.check(src("a", 5, 2)); got != dedupNew {
		t.Fatalf("resend of a failed append: %v", got)
	}
	if got := d.check(src("a", 5, 3)); got != dedupDuplicate {
		t.Fatalf("stored one: %v", got)
	}
}

// The state is rebuilt from the snapshot and the entries after it.
func TestReplDedupRecovery(t *testing.T) {
	l, err := memory.New().Open(context.Background(), "persistent://t/ns/x")
	if err != nil {
		t.Fatal(err)
	}
	put := func(from string, pos string) {
		md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1)}
		if from != "" {
			md.ReplicatedFrom = proto.String(from)
			md.Properties = []*pb.KeyValue{{Key: proto.String(geo.SourcePositionProperty), Value: proto.String(pos)}}
		}
		done := make(chan struct{})
		l.Append(wire.BuildPayload(md, []byte("x")), func(int64, error) { close(done) })
		<-done
	}
	put("a", "3:10")
	put("", "")
	put("b", "7:1")
	put("a", "3:12")
	d, err := recoverReplDedup(context.Background(), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.persisted["a"] != (replPos{3, 12}) || d.persisted["b"] != (replPos{7, 1}) || d.lastEntry != 3 {
		t.Fatalf("recovered %+v last %d", d.persisted, d.lastEntry)
	}
	// From a snapshot: only what follows it is replayed.
	snap := d
	put("a", "3:13")
	st := snapshotState(snap)
	d, err = recoverReplDedup(context.Background(), l, st)
	if err != nil {
		t.Fatal(err)
	}
	if d.persisted["a"] != (replPos{3, 13}) || d.persisted["b"] != (replPos{7, 1}) {
		t.Fatalf("recovered from snapshot %+v", d.persisted)
	}
}

// replicatedSource reads what proto.Unmarshal would: the last
// replicated_from and the first source position property, among other
// fields; malformed metadata and a missing position are errors.
func TestReplicatedSource(t *testing.T) {
	kv := func(k, v string) *pb.KeyValue { return &pb.KeyValue{Key: proto.String(k), Value: proto.String(v)} }
	md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(3), PublishTime: proto.Uint64(1),
		ReplicatedFrom: proto.String("east"), PartitionKey: proto.String("k"),
		Properties: []*pb.KeyValue{kv("a", "1"), kv(geo.SourcePositionProperty, "12:34"), kv(geo.SourcePositionProperty, "99:99")}}
	meta, err := proto.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	// A later replicated_from wins, as protobuf merges.
	meta = protowire.AppendTag(meta, 5, protowire.BytesType)
	meta = protowire.AppendString(meta, "west")
	src, err := replicatedSource(meta)
	if err != nil || src.cluster != "west" || src.pos != (replPos{12, 34}) {
		t.Fatalf("got %+v, %v", src, err)
	}
	md.Properties = md.Properties[:1]
	noPos, _ := proto.Marshal(md)
	if _, err := replicatedSource(noPos); err == nil || !strings.Contains(err.Error(), geo.SourcePositionProperty) {
		t.Fatalf("no position: %v", err)
	}
	for _, bad := range [][]byte{meta[:len(meta)-3], {0x22, 0x05, 0x0a}, {0xff}} {
		if _, err := replicatedSource(bad); err == nil {
			t.Fatalf("malformed %x accepted", bad)
		}
	}
}

// BenchmarkReplicatedSource is the receiving side's per-send read of the
// source of a replicated message (a 128 B message's metadata with a key and
// two properties besides the source position).
func BenchmarkReplicatedSource(b *testing.B) {
	md := &pb.MessageMetadata{ProducerName: proto.String("producer-1"), SequenceId: proto.Uint64(42), PublishTime: proto.Uint64(1_700_000_000_000),
		PartitionKey: proto.String("key-7"), ReplicatedFrom: proto.String("a"), Properties: []*pb.KeyValue{
			{Key: proto.String("a"), Value: proto.String("1")}, {Key: proto.String("b"), Value: proto.String("2")},
			{Key: proto.String(geo.SourcePositionProperty), Value: proto.String("7:12345")}}}
	meta, _ := proto.Marshal(md)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := replicatedSource(meta); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What it did before: decode the whole metadata (kept as the reference).
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m pb.MessageMetadata
			if err := proto.Unmarshal(meta, &m); err != nil {
				b.Fatal(err)
			}
			for _, kv := range m.GetProperties() {
				if kv.GetKey() == geo.SourcePositionProperty {
					if _, _, err := geo.ParseSourcePosition(kv.GetValue()); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
}
