package broker

import (
	"fmt"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// addProducer attaches p according to its access mode. ready is false when
// a WaitForExclusive producer was queued: it gets a second PRODUCER_SUCCESS
// once the topic is free (promoteWaiting).
//
//   - Shared: refused while an exclusive producer holds the topic.
//   - Exclusive: refused while any other producer is attached.
//   - ExclusiveWithFencing: closes the other producers and takes over.
//   - WaitForExclusive: takes the topic when free, else waits in line.
//
// An exclusive producer that reconnects presents the epoch it held; if
// another took the topic meanwhile it is fenced.
// policies are the topic's effective policies, read by the caller (a read
// may block, so not under t.mu).
func (t *Topic) addProducer(p *Producer, mode pb.ProducerAccessMode, epoch *uint64, policies meta.Policies) (ready bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, errShuttingDown
	}
	if _, ok := t.producers[p.name]; ok {
		return false, newError(pb.ServerError_ProducerBusy, fmt.Sprintf("producer %q is already connected to %s", p.name, t.fullName))
	}
	t.maxMessageSize.Store(int64(valueOrInt(policies.MaxMessageSize, 0)))
	t.applyDelivery(policies)
	if err := t.checkProducerLimits(policies); err != nil {
		return false, err
	}
	if err := t.checkTerminated(); err != nil {
		return false, err
	}
	if mode != pb.ProducerAccessMode_Shared && epoch != nil && *epoch != t.epoch {
		return false, newError(pb.ServerError_ProducerFenced,
			fmt.Sprintf("producer %q was fenced: topic epoch is %d, not %d", p.name, t.epoch, *epoch))
	}
	switch mode {
	// Pulsar's answers: a Shared producer next to an exclusive one is
	// busy (it may retry); an Exclusive one is fenced (it must not).
	case pb.ProducerAccessMode_Shared:
		if t.exclusive != nil || len(t.waiting) > 0 {
			return false, newError(pb.ServerError_ProducerBusy, "Topic has an existing exclusive producer: "+t.exclusiveName())
		}
	case pb.ProducerAccessMode_Exclusive:
		if t.exclusive != nil || len(t.waiting) > 0 {
			return false, newError(pb.ServerError_ProducerFenced, "Topic has an existing exclusive producer: "+t.exclusiveName())
		}
		if len(t.producers) > 0 {
			return false, newError(pb.ServerError_ProducerFenced, "Topic has existing shared producers")
		}
		t.takeExclusive(p, epoch)
	case pb.ProducerAccessMode_ExclusiveWithFencing:
		for _, other := range t.producers {
			delete(t.producers, other.name)
			t.b.metrics.producers.Dec()
			go other.closeByBroker() // waits for its in-flight sends
		}
		t.takeExclusive(p, epoch)
	case pb.ProducerAccessMode_WaitForExclusive:
		if len(t.producers) > 0 {
			t.waiting = append(t.waiting, p)
			return false, nil
		}
		t.takeExclusive(p, epoch)
	default:
		return false, newError(pb.ServerError_NotAllowedError, fmt.Sprintf("unknown producer access mode %d", mode))
	}
	t.producers[p.name] = p
	t.b.metrics.producers.Inc()
	return true, nil
}

// exclusiveName names the exclusive producer (or the first waiting one).
// Called with t.mu held.
func (t *Topic) exclusiveName() string {
	if t.exclusive != nil {
		return t.exclusive.name
	}
	if len(t.waiting) > 0 {
		return t.waiting[0].name
	}
	return ""
}

// takeExclusive records p as the exclusive holder. Called with t.mu held.
func (t *Topic) takeExclusive(p *Producer, epoch *uint64) {
	if epoch == nil {
		t.epoch++
	}
	t.exclusive = p
	p.epoch = t.epoch
}

func (t *Topic) removeProducer(p *Producer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, w := range t.waiting {
		if w == p {
			t.waiting = append(t.waiting[:i], t.waiting[i+1:]...)
			return
		}
	}
	if t.producers[p.name] == p {
		delete(t.producers, p.name)
		t.b.metrics.producers.Dec()
	}
	if t.exclusive == p {
		t.exclusive = nil
	}
	t.promoteWaiting()
}

// promoteWaiting hands a free topic to the first WaitForExclusive producer
// and tells its client with a PRODUCER_SUCCESS that is ready. Called with t.mu held.
func (t *Topic) promoteWaiting() {
	if len(t.waiting) == 0 || len(t.producers) > 0 || t.closed {
		return
	}
	p := t.waiting[0]
	t.waiting = t.waiting[1:]
	t.takeExclusive(p, nil)
	t.producers[p.name] = p
	t.b.metrics.producers.Inc()
	p.cn.writeProducerSuccess(p.requestID, p, true)
}
