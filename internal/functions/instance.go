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
	*supervise.Instance
	r       *runner
	log     *slog.Logger
	metrics instanceMetrics

	received       atomic.Int64
	processed      atomic.Int64
	userExceptions atomic.Int64
	sysExceptions  atomic.Int64
	latencyNanos   atomic.Int64
	lastInvocation atomic.Int64

	mu       sync.Mutex
	userErrs []ExceptionEntry
	sysErrs  []ExceptionEntry
}

func (i *instance) recordError(user bool, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if user {
		i.userExceptions.Add(1)
		i.metrics.userExceptions.Inc()
		i.userErrs = supervise.AppendBounded(i.userErrs, err)
		return
	}
	i.sysExceptions.Add(1)
	i.metrics.sysExceptions.Inc()
	i.SetLastError(err.Error())
	i.sysErrs = supervise.AppendBounded(i.sysErrs, err)
}

// Run runs sessions until the instance is stopped (supervise restarts a
// failed one with backoff).
func (i *instance) Run() {
	i.Instance.Run(i.log, "function", func(ctx context.Context) error {
		if i.r.exe != "" {
			return i.processSession(ctx)
		}
		return i.session()
	}, func(err error) {
		i.recordError(false, err)
		i.metrics.restarts.Inc()
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
		if i.Unsubscribing() {
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
	i.MarkRunning()
	eo := newEOProducers(r)
	defer eo.close()
	var in abi.Message
	for {
		msg, err := consumer.Receive(i.Ctx)
		if err != nil {
			if i.Ctx.Err() != nil {
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
			i.Restarts.Add(1)
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
			r.publish(i.Ctx, &outs[k], func(err error) {
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
			r.publish(i.Ctx, &outs[k], func(err error) {
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
		if err := eo.publish(i.Ctx, msg, outs); err != nil {
			return err
		}
		consumer.Ack(msg)
	}
	return nil
}
