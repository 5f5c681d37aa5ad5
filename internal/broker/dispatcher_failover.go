package broker

import (
	"sort"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// failoverDispatcher delivers to one active consumer at a time. Consumers are
// ordered by priority level (lower is preferred), then by name; among the
// preferred level the active one is the first for a non-partitioned topic
// and index (partition % count) for a partition, as in Pulsar, so the
// partitions of a topic spread over the consumers. Every change of the active
// consumer is announced with ACTIVE_CONSUMER_CHANGE, and the entries pending
// on the previous one are handed to the new one first, in order.
type failoverDispatcher struct {
	noTracking
	s         *Subscription
	partition int
	cs        []*Consumer // sorted
	active    *Consumer
}

func newFailoverDispatcher(s *Subscription) *failoverDispatcher {
	d := &failoverDispatcher{s: s}
	if s != nil {
		d.partition = s.topic.name.PartitionIndex()
	}
	return d
}

func (d *failoverDispatcher) add(c *Consumer) error {
	d.cs = append(d.cs, c)
	sort.SliceStable(d.cs, func(i, j int) bool {
		if d.cs[i].priority != d.cs[j].priority {
			return d.cs[i].priority < d.cs[j].priority
		}
		return d.cs[i].name < d.cs[j].name
	})
	d.elect(c)
	return nil
}

func (d *failoverDispatcher) remove(c *Consumer) {
	for i, x := range d.cs {
		if x == c {
			d.cs = append(d.cs[:i], d.cs[i+1:]...)
			break
		}
	}
	d.elect(nil)
}

// elect picks the active consumer and announces changes. joined is a newly
// added consumer, which learns its state even when the active one stays.
func (d *failoverDispatcher) elect(joined *Consumer) {
	var next *Consumer
	if len(d.cs) > 0 {
		top := 1
		for top < len(d.cs) && d.cs[top].priority == d.cs[0].priority {
			top++
		}
		idx := 0
		if d.partition >= 0 {
			idx = d.partition % top
		}
		next = d.cs[idx]
	}
	prev := d.active
	d.active = next
	if prev == next {
		return
	}
	if prev != nil && d.s != nil {
		// What the old active consumer has not acked goes to the new one first.
		d.s.returnPending(prev, nil)
	}
	for _, c := range d.cs {
		// A joining consumer learns its state from joined, once its client
		// knows it: clients drop an ACTIVE_CONSUMER_CHANGE that arrives
		// before the SUBSCRIBE success.
		if (c == next || c == prev) && c != joined {
			announce(c, c == next)
		}
	}
}

// joined tells a consumer whose SUBSCRIBE was answered whether it is the
// active one. Called with s.mu held.
func (d *failoverDispatcher) joined(c *Consumer) {
	for _, x := range d.cs {
		if x == c {
			announce(c, c == d.active)
			return
		}
	}
}

func announce(c *Consumer, active bool) {
	if c.cn == nil {
		return
	}
	c.cn.writeCommand(&pb.BaseCommand{
		Type:                 pb.BaseCommand_ACTIVE_CONSUMER_CHANGE.Enum(),
		ActiveConsumerChange: &pb.CommandActiveConsumerChange{ConsumerId: proto.Uint64(c.id), IsActive: proto.Bool(active)},
	})
}

func (d *failoverDispatcher) next(int64, *wire.MetadataInfo) (*Consumer, bool) {
	if d.active != nil && d.active.permits > 0 {
		return d.active, false
	}
	return nil, false
}

func (d *failoverDispatcher) consumers() []*Consumer { return d.cs }
