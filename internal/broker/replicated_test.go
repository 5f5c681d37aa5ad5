package broker

import (
	"context"
	"testing"

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
