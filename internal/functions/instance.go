package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

// instance runs one of a function's parallel instances: a consumer on the
// function's subscription and a WASM instance. A session is one consumer
// and sandbox; a failure of either ends the session, and a new one starts
// after a backoff (a sandbox that only timed out or crashed is restarted
// by package wasm inside the session).
type instance struct {
	r       *runner
	id      int
	log     *slog.Logger
	metrics instanceMetrics

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	running        atomic.Bool
	received       atomic.Int64
	processed      atomic.Int64
	userExceptions atomic.Int64
	sysExceptions  atomic.Int64
	restarts       atomic.Int64
	latencyNanos   atomic.Int64
	lastInvocation atomic.Int64

	mu        sync.Mutex
	lastError string
	userErrs  []ExceptionEntry
	sysErrs   []ExceptionEntry
	// unsubscribe makes the session's end remove the subscription (delete
	// with cleanupSubscription).
	unsubscribe bool
}

const maxLatestExceptions = 10

func (i *instance) recordError(user bool, err error) {
	e := ExceptionEntry{ExceptionString: err.Error(), TimestampMs: nowMillis()}
	i.mu.Lock()
	defer i.mu.Unlock()
	if user {
		i.userExceptions.Add(1)
		i.metrics.userExceptions.Inc()
		i.userErrs = append(i.userErrs, e)
		if len(i.userErrs) > maxLatestExceptions {
			i.userErrs = i.userErrs[1:]
		}
		return
	}
	i.sysExceptions.Add(1)
	i.metrics.sysExceptions.Inc()
	i.lastError = e.ExceptionString
	i.sysErrs = append(i.sysErrs, e)
	if len(i.sysErrs) > maxLatestExceptions {
		i.sysErrs = i.sysErrs[1:]
	}
}

// run runs sessions until the instance is stopped (supervise.Loop restarts
// a failed one with backoff).
func (i *instance) run() {
	defer close(i.done)
	supervise.Loop(i.ctx, func(context.Context) error {
		err := i.session()
		i.running.Store(false)
		return err
	}, func(err error, backoff time.Duration) {
		i.recordError(false, err)
		i.restarts.Add(1)
		i.metrics.restarts.Inc()
		i.log.Warn("function instance failed; restarting", "error", err, "backoff", backoff)
	})
}

func (i *instance) session() error {
	r := i.r
	cfg := &r.rec.Config
	consumer, err := r.m.client.Subscribe(r.consumerOptions())
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() {
		i.mu.Lock()
		unsub := i.unsubscribe
		i.mu.Unlock()
		if unsub {
			if err := consumer.Unsubscribe(); err != nil {
				i.log.Warn("function subscription not removed", "subscription", cfg.SubName, "error", err)
			}
		}
		consumer.Close()
	}()
	inst := r.mod.NewInstance(r.env(i.log))
	defer inst.Close()
	if err := inst.Start(); err != nil {
		return err
	}
	i.running.Store(true)
	i.mu.Lock()
	i.lastError = ""
	i.mu.Unlock()
	eo := newEOProducers(r)
	defer eo.close()
	var in abi.Message
	for {
		msg, err := consumer.Receive(i.ctx)
		if err != nil {
			if i.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		if err := i.process(consumer, inst, eo, msg, &in); err != nil {
			return err
		}
	}
}

// toABI fills in from msg, reusing its map.
func toABI(in *abi.Message, msg pulsar.Message) {
	in.Topic = msg.Topic()
	in.Key = msg.Key()
	in.EventTime = 0
	if t := msg.EventTime(); !t.IsZero() {
		in.EventTime = t.UnixMilli()
	}
	in.PublishTime = msg.PublishTime().UnixMilli()
	id := msg.ID()
	in.MessageID = strconv.FormatInt(id.LedgerID(), 10) + ":" + strconv.FormatInt(id.EntryID(), 10) + ":" +
		strconv.Itoa(int(id.BatchIdx())) + ":" + strconv.Itoa(int(id.PartitionIdx()))
	in.Properties = msg.Properties()
	in.Payload = msg.Payload()
}

// process handles one message; an error ends the session (the message is
// left unacknowledged and comes back to the next session, in order).
func (i *instance) process(consumer pulsar.Consumer, inst *wasm.Instance, eo *eoProducers, msg pulsar.Message, in *abi.Message) error {
	r := i.r
	i.received.Add(1)
	i.metrics.received.Inc()
	toABI(in, msg)
	start := time.Now()
	outs, err := inst.Call(in)
	d := time.Since(start)
	i.latencyNanos.Add(int64(d))
	i.metrics.latency.Observe(d.Seconds())
	i.lastInvocation.Store(start.UnixMilli())
	i.metrics.lastInvocation.Set(float64(start.UnixMilli()))
	guarantee := r.rec.Config.ProcessingGuarantees
	if err != nil {
		var ue *wasm.UserError
		i.recordError(errors.As(err, &ue), err)
		if ue == nil {
			i.restarts.Add(1)
			i.metrics.restarts.Inc()
			i.log.Warn("function call failed", "error", err, "message", in.MessageID)
		}
		if guarantee == EffectivelyOnce {
			// A later message must not be published before this one: the
			// redelivery would be dropped as a duplicate. Start over from
			// the first unacknowledged message.
			return fmt.Errorf("message %s: %w", in.MessageID, err)
		}
		consumer.Nack(msg)
		return nil
	}
	i.processed.Add(1)
	i.metrics.processed.Inc()
	switch guarantee {
	case AtMostOnce:
		consumer.Ack(msg)
		for k := range outs {
			r.publish(i.ctx, &outs[k], func(err error) {
				if err != nil {
					i.recordError(false, fmt.Errorf("publish (at most once, dropped): %w", err))
				}
			})
		}
	case AtLeastOnce:
		if len(outs) == 0 {
			consumer.Ack(msg)
			return nil
		}
		pending := &atomic.Int64{}
		pending.Store(int64(len(outs)))
		var failed atomic.Bool
		for k := range outs {
			r.publish(i.ctx, &outs[k], func(err error) {
				if err != nil {
					failed.Store(true)
					i.recordError(false, fmt.Errorf("publish: %w", err))
				}
				if pending.Add(-1) == 0 {
					if failed.Load() {
						consumer.Nack(msg)
					} else {
						consumer.Ack(msg)
					}
				}
			})
		}
	case EffectivelyOnce:
		if err := eo.publish(i.ctx, msg, outs); err != nil {
			return err
		}
		consumer.Ack(msg)
	}
	return nil
}
