package broker

import (
	"fmt"
	"sync/atomic"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// topicDelivery is a topic's delayed delivery policy, kept current by
// applyLimits: with delayed delivery off, messages with a deliver-at time
// are dispatched at once (as Pulsar does); a delay beyond the maximum is
// refused at publish.
type topicDelivery struct {
	delayedOff atomic.Bool
	maxDelayMs atomic.Int64 // 0: no bound
}

func (t *Topic) applyDelivery(p meta.Policies) {
	d := p.DelayedDelivery
	t.delivery.delayedOff.Store(d != nil && !d.Active)
	var maxDelay int64
	if d != nil && d.Active {
		maxDelay = d.MaxDeliveryDelayInMillis
	}
	t.delivery.maxDelayMs.Store(maxDelay)
}

// checkDelay refuses a message whose deliver-at time lies further after
// its publish time than the maximum delay.
func (d *topicDelivery) checkDelay(md *wire.MetadataInfo) error {
	limit := d.maxDelayMs.Load()
	if limit <= 0 || !md.HasDeliverAtTime || md.DeliverAtTime-int64(md.PublishTime) <= limit {
		return nil
	}
	return newError(pb.ServerError_NotAllowedError, fmt.Sprintf("Exceeds max allowed delivery delay of %d milliseconds", limit)) // Pulsar's words
}

// autoSubscriptionCreation reports whether a consumer may create a durable
// subscription: the topic's or namespace's override, else the broker's
// allowAutoSubscriptionCreation (flag or dynamic configuration).
func (b *Broker) autoSubscriptionCreation(p meta.Policies) bool {
	if o := p.AutoSubscriptionCreation; o != nil {
		return o.AllowAutoSubscriptionCreation
	}
	return b.dyn.allowAutoSubscriptionCreation.Load()
}

func (t *Topic) hasSubscription(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.subs[name]
	return ok
}
