package functions

import (
	"context"
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
	// inProcess: the current session reads in process (status, metric).
	inProcess atomic.Bool

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
	consumer, err := i.openInputs()
	if err != nil {
		return err
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
	size := r.m.cfg.batchSize()
	msgs := make([]pulsar.Message, 0, size)
	var bt batchABI
	for {
		msg, err := consumer.Receive(i.Ctx)
		if err != nil {
			if i.Ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		// A batch is what the consumer has already received, up to size:
		// batching never waits for messages.
		msgs = consumer.drain(append(msgs[:0], msg), size)
		if err := i.processBatch(consumer, inst, eo, msgs, bt.fill(msgs)); err != nil {
			return err
		}
	}
}

// openInputs subscribes in process when the broker serves every input
// (inprocess.go), else through the client.
func (i *instance) openInputs() (inputSource, error) {
	r := i.r
	ctx, cancel := context.WithTimeout(i.Ctx, 30*time.Second)
	defer cancel()
	if topics := r.inprocessInputs(ctx); topics != nil {
		name := fmt.Sprintf("%s-%d-%d", r.fqfn, i.ID, time.Now().UnixNano())
		src, err := r.openLocalSource(ctx, topics, name)
		if err != nil {
			return nil, err
		}
		i.setInProcess(true)
		return src, nil
	}
	consumer, err := r.m.client.Subscribe(r.consumerOptions())
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	i.setInProcess(false)
	return clientSource{consumer}, nil
}

func (i *instance) setInProcess(on bool) {
	i.inProcess.Store(on)
	v := 0.0
	if on {
		v = 1
	}
	i.metrics.inProcess.Set(v)
}

// batchABI holds a batch's ABI records, reused from batch to batch.
type batchABI struct {
	ins  []abi.Message
	ids  []byte // the batch's message ids, formatted one after another
	ends []int
}

// fill returns msgs' ABI records (valid until the next fill). The message
// ids are substrings of one string per batch: formatting each into its
// own string was the worker's largest allocation count per message.
func (bt *batchABI) fill(msgs []pulsar.Message) []abi.Message {
	bt.ins = append(bt.ins[:0], make([]abi.Message, len(msgs))...)
	bt.ids, bt.ends = bt.ids[:0], bt.ends[:0]
	for k, m := range msgs {
		toABI(&bt.ins[k], m)
		bt.ids = appendMessageID(bt.ids, m.ID())
		bt.ends = append(bt.ends, len(bt.ids))
	}
	ids, at := string(bt.ids), 0
	for k, end := range bt.ends {
		bt.ins[k].MessageID = ids[at:end]
		at = end
	}
	return bt.ins
}

// appendMessageID formats id as ledger:entry:batch:partition (what the
// SDK's Message.MessageID holds).
func appendMessageID(b []byte, id pulsar.MessageID) []byte {
	b = strconv.AppendInt(b, id.LedgerID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.EntryID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.BatchIdx()), 10)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(id.PartitionIdx()), 10)
}

// toABI fills in from msg, but for its message id.
func toABI(in *abi.Message, msg pulsar.Message) {
	in.Topic = msg.Topic()
	in.Key = msg.Key()
	in.EventTime = 0
	if t := msg.EventTime(); !t.IsZero() {
		in.EventTime = t.UnixMilli()
	}
	in.PublishTime = msg.PublishTime().UnixMilli()
	in.Properties = msg.Properties()
	in.Payload = msg.Payload()
}

// processBatch handles msgs (ins are their ABI records) with batch calls;
// an error ends the session (the unacknowledged messages come back to the
// next session, in order).
func (i *instance) processBatch(consumer acknowledger, inst *wasm.Instance, eo *eoProducers, msgs []pulsar.Message, ins []abi.Message) error {
	r := i.r
	// The in-process producers send what the batch gathered, one entry
	// per output topic.
	defer r.flushLocal()
	n := int64(len(msgs))
	i.received.Add(n)
	i.metrics.received.Add(float64(n))
	eoGuarantee := r.rec.Config.ProcessingGuarantees == EffectivelyOnce
	for done := 0; done < len(msgs); {
		start := time.Now()
		res, err := inst.CallBatch(ins[done:], eoGuarantee)
		d := time.Since(start)
		i.lastInvocation.Store(start.UnixMilli())
		i.metrics.lastInvocation.Set(float64(start.UnixMilli()))
		ran := len(res)
		if err != nil {
			ran++
		}
		per := d / time.Duration(max(ran, 1))
		for range ran {
			i.latencyNanos.Add(int64(per))
			i.metrics.latency.Observe(per.Seconds())
		}
		// The state writes of the batch are made durable before any of
		// its inputs is acknowledged.
		if ferr := r.state.flush(i.Ctx); ferr != nil {
			return ferr
		}
		for k := range res {
			if err := i.finish(consumer, eo, msgs[done+k], &ins[done+k], &res[k]); err != nil {
				return err
			}
		}
		done += len(res)
		if err != nil {
			// The message at done crashed or timed out the instance
			// (already restarted by package wasm).
			i.recordError(false, err)
			i.Restarts.Add(1)
			i.metrics.restarts.Inc()
			i.log.Warn("function call failed", "error", err, "message", ins[done].MessageID)
			if eoGuarantee {
				// A later message must not be published before this one:
				// the redelivery would be dropped as a duplicate. Start
				// over from the first unacknowledged message.
				return fmt.Errorf("message %s: %w", ins[done].MessageID, err)
			}
			consumer.Nack(msgs[done])
			done++
			continue
		}
		if len(res) == 0 {
			return fmt.Errorf("function module returned no result for a batch of %d", len(msgs)-done)
		}
	}
	return nil
}

// finish publishes one message's outputs and acknowledges it as its
// processing guarantee and autoAck say.
func (i *instance) finish(consumer acknowledger, eo *eoProducers, msg pulsar.Message, in *abi.Message, res *abi.Result) error {
	r := i.r
	cfg := &r.rec.Config
	manual := cfg.manualAck()
	if res.Status != abi.ResultOK {
		err := &wasm.UserError{Msg: res.Error}
		i.recordError(true, err)
		if cfg.ProcessingGuarantees == EffectivelyOnce {
			return fmt.Errorf("message %s: %w", in.MessageID, err)
		}
		// A failed input is negatively acknowledged (Pulsar's Java
		// runtime fails the record), unless a MANUAL function acked it.
		if !manual || res.Ack != abi.AckDone {
			consumer.Nack(msg)
		} else {
			consumer.Ack(msg)
		}
		return nil
	}
	i.processed.Add(1)
	i.metrics.processed.Inc()
	outs := res.Outputs
	switch {
	case cfg.ProcessingGuarantees == AtMostOnce:
		consumer.Ack(msg)
		for k := range outs {
			r.send(i.Ctx, &outs[k], producerMessage(&outs[k]), func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					i.recordError(false, fmt.Errorf("publish (at most once, dropped): %w", err))
				}
			})
		}
	case cfg.ProcessingGuarantees == EffectivelyOnce:
		if err := eo.publish(i.Ctx, msg, outs); err != nil {
			return err
		}
		consumer.Ack(msg)
	default: // ATLEAST_ONCE and MANUAL
		if len(outs) == 0 {
			a := acker{consumer: consumer, msg: msg, manual: manual, ack: res.Ack}
			a.settle()
			return nil
		}
		// res is reused by the next call: a keeps its Ack.
		a := &acker{i: i, consumer: consumer, msg: msg, manual: manual, ack: res.Ack}
		a.pending.Store(int32(len(outs)))
		sent := a.sent
		for k := range outs {
			pm := &a.first
			if k > 0 {
				pm = &pulsar.ProducerMessage{}
			}
			setProducerMessage(pm, &outs[k])
			r.send(i.Ctx, &outs[k], pm, sent)
		}
	}
	return nil
}

// acknowledger is what finishing a message needs of its source.
type acknowledger interface {
	Ack(pulsar.Message) error
	Nack(pulsar.Message)
}

// acker acknowledges an ATLEAST_ONCE or MANUAL input once its outputs are
// receipted, or negatively acknowledges it when one failed. It carries the
// first output's message: with the callback, the only allocations per
// message.
type acker struct {
	first    pulsar.ProducerMessage
	i        *instance
	consumer acknowledger
	msg      pulsar.Message
	manual   bool
	ack      int32 // the function's Ack/Nack (MANUAL)
	pending  atomic.Int32
	failed   atomic.Bool
}

func (a *acker) sent(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
	if err != nil {
		a.failed.Store(true)
		a.i.recordError(false, fmt.Errorf("publish: %w", err))
	}
	if a.pending.Add(-1) == 0 {
		a.settle()
	}
}

func (a *acker) settle() {
	// A function's Nack is honoured with ATLEAST_ONCE and MANUAL; with
	// MANUAL an input it neither acks nor nacks stays unacknowledged.
	switch {
	case a.failed.Load() || a.ack == abi.NackDone:
		a.consumer.Nack(a.msg)
	case !a.manual || a.ack == abi.AckDone:
		a.consumer.Ack(a.msg)
	}
}
