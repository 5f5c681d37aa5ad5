package broker

import (
	"fmt"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// dispatcher chooses which consumer of a subscription gets an entry. It is
// called with Subscription.mu held. Each subscription type has one; the
// dispatch loop, cursor, replay and redelivery logic are shared.
type dispatcher interface {
	// add attaches a consumer or refuses it with a wire error.
	add(c *Consumer) error
	remove(c *Consumer)
	// next returns the consumer that gets the entry with id described by md,
	// or nil when no consumer can take it now. keyBlocked reports that only
	// this entry's key is held back (Key_Shared ordering): the subscription
	// parks the entry in its replay queue and goes on with the next ones.
	next(id int64, md *wire.MetadataInfo) (c *Consumer, keyBlocked bool)
	consumers() []*Consumer
	// delivered is called after entry id went to c; released when it leaves
	// c again (acked, or taken back for redelivery).
	delivered(c *Consumer, id int64, md *wire.MetadataInfo)
	released(c *Consumer, id int64)
}

// noTracking is embedded by dispatchers that do not follow individual entries.
type noTracking struct{}

func (noTracking) delivered(*Consumer, int64, *wire.MetadataInfo) {}
func (noTracking) released(*Consumer, int64)                      {}

func newDispatcher(t pb.CommandSubscribe_SubType, s *Subscription) (dispatcher, error) {
	switch t {
	case pb.CommandSubscribe_Exclusive:
		return &exclusiveDispatcher{}, nil
	case pb.CommandSubscribe_Shared:
		return &sharedDispatcher{}, nil
	case pb.CommandSubscribe_Failover:
		return newFailoverDispatcher(s), nil
	case pb.CommandSubscribe_Key_Shared:
		return newKeySharedDispatcher(s), nil
	}
	return nil, newError(pb.ServerError_NotAllowedError, fmt.Sprintf("subscription type %s is not supported yet", t))
}

// exclusiveDispatcher serves one consumer; a second one is refused.
type exclusiveDispatcher struct {
	noTracking
	c   *Consumer
	one [1]*Consumer // consumers() without an allocation per call
}

func (d *exclusiveDispatcher) add(c *Consumer) error {
	if d.c != nil {
		return newError(pb.ServerError_ConsumerBusy, "exclusive subscription already has a consumer")
	}
	d.c, d.one[0] = c, c
	return nil
}

func (d *exclusiveDispatcher) remove(c *Consumer) {
	if d.c == c {
		d.c, d.one[0] = nil, nil
	}
}

func (d *exclusiveDispatcher) next(int64, *wire.MetadataInfo) (*Consumer, bool) {
	if d.c != nil && d.c.permits > 0 {
		return d.c, false
	}
	return nil, false
}

func (d *exclusiveDispatcher) consumers() []*Consumer {
	if d.c == nil {
		return nil
	}
	return d.one[:]
}

// sharedDispatcher spreads entries round-robin over consumers with permits.
type sharedDispatcher struct {
	noTracking
	cs []*Consumer
	rr int
}

func (d *sharedDispatcher) add(c *Consumer) error {
	d.cs = append(d.cs, c)
	return nil
}

func (d *sharedDispatcher) remove(c *Consumer) {
	for i, x := range d.cs {
		if x == c {
			d.cs = append(d.cs[:i], d.cs[i+1:]...)
			break
		}
	}
}

func (d *sharedDispatcher) next(int64, *wire.MetadataInfo) (*Consumer, bool) {
	n := len(d.cs)
	for i := 0; i < n; i++ {
		c := d.cs[(d.rr+i)%n]
		if c.available() {
			d.rr = (d.rr + i + 1) % n
			return c, false
		}
	}
	return nil, false
}

func (d *sharedDispatcher) consumers() []*Consumer { return d.cs }
