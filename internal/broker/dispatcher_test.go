package broker

import (
	"testing"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestExclusiveDispatcher(t *testing.T) {
	d, err := newDispatcher(pb.CommandSubscribe_Exclusive, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := &Consumer{id: 1}, &Consumer{id: 2}
	if err := d.add(a); err != nil {
		t.Fatal(err)
	}
	if err := d.add(b); serverError(err) != pb.ServerError_ConsumerBusy {
		t.Fatalf("second consumer: %v", err)
	}
	var md wire.MetadataInfo
	if c, _ := d.next(0, &md); c != nil {
		t.Fatal("consumer without permits picked")
	}
	a.permits = 1
	if c, _ := d.next(0, &md); c != a {
		t.Fatal("consumer with permits not picked")
	}
	d.remove(a)
	if err := d.add(b); err != nil || len(d.consumers()) != 1 {
		t.Fatalf("after remove: %v %d", err, len(d.consumers()))
	}
}

func TestSharedDispatcherRoundRobin(t *testing.T) {
	d, _ := newDispatcher(pb.CommandSubscribe_Shared, nil)
	cs := []*Consumer{{id: 1, permits: 2}, {id: 2, permits: 1}, {id: 3, permits: 0}}
	for _, c := range cs {
		d.add(c)
	}
	var md wire.MetadataInfo
	var got []uint64
	for {
		c, _ := d.next(0, &md)
		if c == nil {
			break
		}
		got = append(got, c.id)
		c.permits--
	}
	want := []uint64{1, 2, 1}
	if len(got) != len(want) {
		t.Fatalf("picked %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picked %v, want %v", got, want)
		}
	}
	d.remove(cs[0])
	cs[2].permits = 1
	if c, _ := d.next(0, &md); c != cs[2] {
		t.Fatalf("after remove picked %v", c)
	}
}

func TestUnsupportedSubscriptionType(t *testing.T) {
	if _, err := newDispatcher(pb.CommandSubscribe_SubType(99), nil); serverError(err) != pb.ServerError_NotAllowedError {
		t.Fatalf("unknown type: %v", err)
	}
}
