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

func TestFailoverDispatcherElection(t *testing.T) {
	d := newFailoverDispatcher(nil)
	b := &Consumer{id: 2, name: "b", permits: 5}
	a := &Consumer{id: 1, name: "a", permits: 5}
	d.add(b)
	if c, _ := d.next(0, nil); c != b {
		t.Fatal("single consumer not active")
	}
	d.add(a) // sorts before b: takes over
	if c, _ := d.next(0, nil); c != a {
		t.Fatal("consumer with the smaller name not active")
	}
	hi := &Consumer{id: 3, name: "z", priority: -1, permits: 5}
	d.add(hi) // higher priority (lower level) wins over names
	if c, _ := d.next(0, nil); c != hi {
		t.Fatal("higher-priority consumer not active")
	}
	d.remove(hi)
	if c, _ := d.next(0, nil); c != a {
		t.Fatal("active consumer not re-elected after removal")
	}
	a.permits = 0
	if c, _ := d.next(0, nil); c != nil {
		t.Fatal("standby consumer picked while the active one has no permits")
	}

	// Partitions spread over consumers of the same priority.
	p := &failoverDispatcher{partition: 3}
	p.add(&Consumer{id: 1, name: "a", permits: 1})
	second := &Consumer{id: 2, name: "b", permits: 1}
	p.add(second)
	if c, _ := p.next(0, nil); c != second {
		t.Fatal("partition 3 of 2 consumers should go to the second")
	}
}
