package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Topic lifecycle, and why b.mu is never held across a load.
//
// Loading a topic reads metadata (does its namespace exist, is
// deduplication on), opens its ledger and replays the deduplication state:
// on remote stores each may take long or fail. So b.mu only guards three
// maps, and the work happens outside it:
//
//   - topics: loaded topics.
//   - loads: one topicLoad per topic being loaded. Concurrent getTopic calls
//     for one topic wait on the same load (one namespace read, one ledger
//     open); loads of different topics run in parallel. A load runs in its
//     own goroutine with its own deadline (OperationTimeout, from the
//     broker's context), so a caller that gives up does not fail the
//     others. A failed load is forgotten: the next getTopic tries again.
//   - fences: topics being unloaded or deleted. getTopic waits for the fence
//     to go; the fence holder waits for a load in flight to finish, and a
//     load that finishes under a fence (or during shutdown) closes what it
//     opened instead of publishing the topic.
//
// Lock order: b.mu, then t.mu, then s.mu; none is held while waiting for a
// load or a fence.

// topicLoad is one attempt at loading a topic.
type topicLoad struct {
	done chan struct{}
	t    *Topic // set before done is closed, nil on error
	err  error
}

// errTopicFenced is returned to callers that asked for a topic while it was
// being unloaded or deleted and gave up waiting: the client retries.
var errTopicFenced = newError(pb.ServerError_ServiceNotReady, "topic is being unloaded or deleted, retry")

// getTopic returns the loaded topic, loading or creating it. ctx bounds the
// caller's wait, not the load itself.
func (b *Broker) getTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	full := name.String()
	for {
		b.mu.Lock()
		if b.closing {
			b.mu.Unlock()
			return nil, errShuttingDown
		}
		if t, ok := b.topics[full]; ok {
			b.mu.Unlock()
			return t, nil
		}
		if fence := b.fences[full]; fence != nil {
			b.mu.Unlock()
			select {
			case <-fence:
				continue
			case <-ctx.Done():
				return nil, requestError(ctx, errTopicFenced)
			}
		}
		ld := b.loads[full]
		if ld == nil {
			ld = &topicLoad{done: make(chan struct{})}
			b.loads[full] = ld
			b.loadWG.Add(1)
			go b.load(name, ld)
		}
		b.mu.Unlock()
		select {
		case <-ld.done:
		case <-ctx.Done():
			return nil, requestError(ctx, fmt.Errorf("load topic %s: %w", full, ctx.Err()))
		}
		if errors.Is(ld.err, errTopicFenced) {
			continue // unloaded or deleted while loading: wait for the fence, then load anew
		}
		return ld.t, ld.err
	}
}

// load runs one topic load and publishes its outcome.
func (b *Broker) load(name naming.Topic, ld *topicLoad) {
	defer b.loadWG.Done()
	full := name.String()
	start := time.Now()
	b.metrics.loadsInflight.Inc()
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
	t, err := b.loadTopic(ctx, name)
	cancel()
	b.metrics.loadsInflight.Dec()

	b.mu.Lock()
	delete(b.loads, full)
	switch {
	case err != nil:
	case b.closing:
		err = errShuttingDown
	case b.fences[full] != nil:
		err = errTopicFenced
	default:
		b.topics[full] = t
		b.metrics.topics.Inc()
	}
	b.mu.Unlock()
	if err != nil && t != nil {
		// Opened, but the broker closes or the topic goes: release it.
		t.closeUnpublished()
		t = nil
	}
	result := "ok"
	if err != nil {
		result = "error"
		if !errors.Is(err, errTopicFenced) && !errors.Is(err, errShuttingDown) {
			b.log.Warn("topic load failed", "topic", full, "err", err)
		}
	}
	b.metrics.loadSeconds.WithLabelValues(result).Observe(time.Since(start).Seconds())
	if t != nil && err == nil {
		t.syncReplication()
	}
	ld.t, ld.err = t, err
	close(ld.done)
}

// loadTopic checks the namespace and opens the topic.
func (b *Broker) loadTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	if err := b.checkOwner(name); err != nil {
		return nil, err
	}
	if _, err := b.policies.Namespace(ctx, name.Namespace); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return nil, newError(pb.ServerError_TopicNotFound, "namespace "+name.Namespace.String()+" does not exist")
		}
		return nil, b.metadataError("namespace", fmt.Errorf("check namespace %s: %w", name.Namespace, err))
	}
	return newTopic(ctx, b, name)
}

// fence keeps topic full from loading until release is called, and waits
// for a load in flight to end (a load that ends under the fence discards
// its topic). Unload and delete hold it while the ledger closes or goes, so
// no client reopens the ledger meanwhile.
func (b *Broker) fence(full string) (release func()) {
	for {
		b.mu.Lock()
		if other := b.fences[full]; other != nil {
			b.mu.Unlock()
			<-other
			continue
		}
		ch := make(chan struct{})
		b.fences[full] = ch
		ld := b.loads[full]
		b.mu.Unlock()
		if ld != nil {
			<-ld.done
		}
		return func() {
			b.mu.Lock()
			delete(b.fences, full)
			b.mu.Unlock()
			close(ch)
		}
	}
}

// closeUnpublished closes a topic that was loaded but never handed out.
func (t *Topic) closeUnpublished() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	if t.ledger != nil {
		if err := t.ledger.Close(); err != nil {
			t.b.log.Error("close ledger of a discarded load", "topic", t.fullName, "err", err)
		}
	}
}
