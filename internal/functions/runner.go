package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/functions/wasm"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/supervise"
	"github.com/messagebus/messagebus/pkg/function/abi"
)

// runner runs one function: its compiled module, its instances and the
// producers they share.
type runner struct {
	m     *Manager
	rec   Record
	fqfn  string
	log   *slog.Logger
	rt    *wasm.Runtime
	mod   *wasm.Module
	state *metaState
	ucfg  []byte
	// dir and exe are a process function's work directory and executable
	// (rt and mod are nil then).
	dir, exe string

	instances *supervise.Group[*instance]

	mu        sync.Mutex
	producers map[string]pulsar.Producer // by topic, for ATMOST/ATLEAST_ONCE
	// locals are the in-process producers of outputs the broker serves
	// (by topic; nil: that output takes the client path).
	locals  map[string]*localSender
	logSink *logSink

	// noInProcess sends the instances to the client path (an input needs
	// what only the client does, e.g. chunk reassembly).
	noInProcess atomic.Bool

	// triggerMu serializes trigger calls on their own instance; it is not
	// mu, which the function's log (publishing to its log topic) takes.
	triggerMu sync.Mutex
	trigger   *wasm.Instance
}

func newRunner(ctx context.Context, m *Manager, rec Record, code []byte) (*runner, error) {
	cfg := &rec.Config
	if cfg.isProcess() {
		return newProcessRunner(m, rec, code)
	}
	limits := wasm.Config{MaxMemory: m.cfg.MaxMemory, CallTimeout: m.cfg.CallTimeout}
	if cfg.Resources != nil && cfg.Resources.RAM > 0 && (limits.MaxMemory <= 0 || cfg.Resources.RAM < limits.MaxMemory) {
		limits.MaxMemory = cfg.Resources.RAM
	}
	if cfg.TimeoutMs != nil && *cfg.TimeoutMs > 0 {
		if d := time.Duration(*cfg.TimeoutMs) * time.Millisecond; limits.CallTimeout <= 0 || d < limits.CallTimeout {
			limits.CallTimeout = d
		}
	}
	rt, err := wasm.NewRuntime(ctx, limits)
	if err != nil {
		return nil, err
	}
	mod, err := rt.Compile(ctx, code)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	ucfg, err := userConfigJSON(cfg)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	r := baseRunner(m, rec, ucfg)
	r.rt, r.mod = rt, mod
	return r, nil
}

func userConfigJSON(cfg *Config) ([]byte, error) {
	if cfg.UserConfig == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(cfg.UserConfig)
}

// baseRunner is what both runtimes' runners have: instances, state,
// producers and the log (teed to the log topic when there is one).
func baseRunner(m *Manager, rec Record, ucfg []byte) *runner {
	cfg := &rec.Config
	r := &runner{m: m, rec: rec, fqfn: cfg.FQFN(), state: newState(m.cfg.Meta, cfg.FQFN()),
		ucfg: ucfg, producers: map[string]pulsar.Producer{}, locals: map[string]*localSender{}, instances: supervise.NewGroup[*instance](cfg.Parallelism)}
	r.log = m.log.With("function", r.fqfn)
	if cfg.LogTopic != "" {
		r.logSink = &logSink{r: r, topic: cfg.LogTopic}
		r.log = slog.New(teeHandler{r.log.Handler(), r.logSink})
	}
	return r
}

func newProcessRunner(m *Manager, rec Record, code []byte) (*runner, error) {
	ucfg, err := userConfigJSON(&rec.Config)
	if err != nil {
		return nil, err
	}
	r := baseRunner(m, rec, ucfg)
	if err := r.prepareProcess(code); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *runner) env(log *slog.Logger) wasm.Env {
	return wasm.Env{State: r.state, Log: log, UserConfig: r.ucfg}
}

func (r *runner) consumerOptions() pulsar.ConsumerOptions {
	cfg := &r.rec.Config
	o := pulsar.ConsumerOptions{
		SubscriptionName:    cfg.SubName,
		ReceiverQueueSize:   1000,
		NackRedeliveryDelay: time.Second,
		Name:                "",
	}
	if len(cfg.Inputs) > 0 {
		o.Topics = cfg.Inputs
	} else {
		o.TopicsPattern = cfg.TopicsPattern
		o.AutoDiscoveryPeriod = 30 * time.Second
	}
	switch cfg.SubscriptionType {
	case SubFailover:
		o.Type = pulsar.Failover
	case SubKeyShared:
		o.Type = pulsar.KeyShared
	default:
		o.Type = pulsar.Shared
	}
	if cfg.SubscriptionPosition == "Earliest" {
		o.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	if cfg.DeadLetterTopic != "" && cfg.maxRetries() > 0 && cfg.ProcessingGuarantees != EffectivelyOnce {
		o.DLQ = &pulsar.DLQPolicy{MaxDeliveries: uint32(cfg.maxRetries()) + 1, DeadLetterTopic: cfg.DeadLetterTopic}
	}
	return o
}

// startInstances starts the instances not running yet (all when ids is
// empty).
func (r *runner) startInstances(ids ...int) {
	r.instances.Start(func(core *supervise.Instance) *instance {
		return &instance{Instance: core, r: r, log: r.log.With("instance", core.ID),
			metrics: r.m.metrics.instance(&r.rec.Config, core.ID)}
	}, ids...)
}

// stopInstances stops instances (all when ids is empty) and waits for
// them; unsubscribe removes the subscription as the last one leaves.
func (r *runner) stopInstances(unsubscribe bool, ids ...int) {
	r.instances.Stop(unsubscribe, ids...)
}

// close stops everything and releases the runtime.
func (r *runner) close(unsubscribe bool) {
	r.stopInstances(unsubscribe)
	r.triggerMu.Lock()
	if r.trigger != nil {
		r.trigger.Close()
		r.trigger = nil
	}
	r.triggerMu.Unlock()
	r.mu.Lock()
	for _, p := range r.producers {
		p.Close()
	}
	r.producers = map[string]pulsar.Producer{}
	for _, l := range r.locals {
		if l != nil {
			l.Close()
		}
	}
	r.locals = map[string]*localSender{}
	r.mu.Unlock()
	if r.rt != nil {
		r.rt.Close(context.Background())
	}
	if r.dir != "" {
		if err := os.RemoveAll(r.dir); err != nil {
			r.log.Warn("function work directory not removed", "dir", r.dir, "error", err)
		}
	}
}

// outputTopic resolves an output's topic ("" is the configured output).
func (r *runner) outputTopic(t string) (string, error) {
	cfg := &r.rec.Config
	if t == "" {
		return cfg.Output, nil
	}
	return parseTopic(t, naming.Namespace{Tenant: cfg.Tenant, Name: cfg.Namespace})
}

func (r *runner) producer(topic string) (pulsar.Producer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.producers[topic]; ok {
		return p, nil
	}
	p, err := r.m.client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("producer for %s: %w", topic, err)
	}
	r.producers[topic] = p
	return p, nil
}

func producerMessage(o *abi.Output) *pulsar.ProducerMessage {
	pm := &pulsar.ProducerMessage{}
	setProducerMessage(pm, o)
	return pm
}

func setProducerMessage(pm *pulsar.ProducerMessage, o *abi.Output) {
	*pm = pulsar.ProducerMessage{Payload: o.Payload, Key: o.Key, Properties: o.Properties}
	if o.EventTime != 0 {
		pm.EventTime = time.UnixMilli(o.EventTime)
	}
}

// publish sends o asynchronously; done gets the outcome (nil also when the
// function has no output topic and the output is dropped).
func (r *runner) publish(ctx context.Context, o *abi.Output, done func(error)) {
	r.send(ctx, o, producerMessage(o), func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { done(err) })
	r.flushLocal()
}

// send sends pm, which is o's message, asynchronously; sent gets the
// outcome (a nil error also when the function has no output topic and the
// output is dropped).
func (r *runner) send(ctx context.Context, o *abi.Output, pm *pulsar.ProducerMessage, sent func(pulsar.MessageID, *pulsar.ProducerMessage, error)) {
	topic, err := r.outputTopic(o.Topic)
	if err != nil || topic == "" {
		sent(nil, pm, err)
		return
	}
	p, err := r.output(ctx, topic)
	if err != nil {
		sent(nil, pm, err)
		return
	}
	p.SendAsync(ctx, pm, sent)
}

// output returns the producer of an output topic: in process when the
// broker serves it (and it is not partitioned: the client routes to
// partitions), else the client's.
func (r *runner) output(ctx context.Context, topic string) (sender, error) {
	ip := r.m.cfg.InProcess
	if ip == nil || r.mod == nil {
		return r.producer(topic)
	}
	r.mu.Lock()
	l, known := r.locals[topic]
	r.mu.Unlock()
	if known && l == nil {
		return r.producer(topic)
	}
	if l != nil && !l.closed() {
		return l, nil
	}
	// First use, or the broker closed it (topic unloaded): decide again.
	l = nil
	if n, err := ip.LocalPartitions(ctx, topic); err == nil && n == 0 && ip.ServesLocally(topic) {
		var err error
		if l, err = newLocalSender(ctx, ip, topic, ""); err != nil {
			r.log.Warn("in-process producer not created, using the client", "topic", topic, "error", err)
			l = nil
		}
	}
	r.mu.Lock()
	if old := r.locals[topic]; old != nil && old != l && !old.closed() {
		// Another instance made one meanwhile: use it.
		r.mu.Unlock()
		if l != nil {
			l.Close()
		}
		return old, nil
	}
	r.locals[topic] = l
	r.mu.Unlock()
	if l == nil {
		return r.producer(topic)
	}
	return l, nil
}

// flushLocal sends what the in-process producers gathered.
func (r *runner) flushLocal() {
	r.mu.Lock()
	ls := make([]*localSender, 0, len(r.locals))
	for _, l := range r.locals {
		if l != nil {
			ls = append(ls, l)
		}
	}
	r.mu.Unlock()
	for _, l := range ls {
		l.flush()
	}
}

// eoProducers are one session's effectively-once producers, by input
// topic partition and output topic.
type eoProducers struct {
	r *runner
	m map[[2]string]sender
}

func newEOProducers(r *runner) *eoProducers {
	return &eoProducers{r: r, m: map[[2]string]sender{}}
}

func (e *eoProducers) close() {
	for _, p := range e.m {
		p.Close()
	}
}

func (e *eoProducers) get(ctx context.Context, input, output string) (sender, error) {
	k := [2]string{input, output}
	if p, ok := e.m[k]; ok {
		if l, local := p.(*localSender); !local || !l.closed() {
			return p, nil
		}
		return nil, fmt.Errorf("effectively-once producer for %s: %w", output, broker.ErrLocalClosed)
	}
	if ip := e.r.m.cfg.InProcess; ip != nil && e.r.mod != nil {
		if n, err := ip.LocalPartitions(ctx, output); err == nil && n == 0 && ip.ServesLocally(output) {
			l, err := newLocalSender(ctx, ip, output, eoProducerName(e.r.fqfn, input, output))
			if err != nil {
				return nil, fmt.Errorf("effectively-once producer for %s: %w", output, err)
			}
			e.m[k] = l
			return l, nil
		}
	}
	p, err := e.r.m.client.CreateProducer(pulsar.ProducerOptions{Topic: output, DisableBatching: true,
		Name: eoProducerName(e.r.fqfn, input, output)})
	if err != nil {
		return nil, fmt.Errorf("effectively-once producer for %s: %w", output, err)
	}
	e.m[k] = p
	return p, nil
}

// publish sends outs with sequence ids derived from msg's position and
// waits for every receipt.
func (e *eoProducers) publish(ctx context.Context, msg pulsar.Message, outs []abi.Output) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(outs))
	for k := range outs {
		topic, err := e.r.outputTopic(outs[k].Topic)
		if err != nil {
			return err
		}
		if topic == "" {
			continue
		}
		seq, err := sequenceID(msg.ID(), k)
		if err != nil {
			return err
		}
		p, err := e.get(ctx, msg.Topic(), topic)
		if err != nil {
			return err
		}
		pm := producerMessage(&outs[k])
		pm.SequenceID = &seq
		wg.Add(1)
		p.SendAsync(ctx, pm, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// triggerCall runs the function once on value as if it came from topic,
// publishes its outputs and returns the first output's payload.
func (r *runner) triggerCall(ctx context.Context, topic string, value []byte) ([]byte, error) {
	cfg := &r.rec.Config
	if topic == "" {
		if len(cfg.Inputs) > 0 {
			topic = cfg.Inputs[0]
		} else {
			topic = cfg.TopicsPattern
		}
	} else {
		t, err := parseTopic(topic, naming.Namespace{Tenant: cfg.Tenant, Name: cfg.Namespace})
		if err != nil {
			return nil, &BadRequestError{Msg: fmt.Sprintf("trigger topic %q: %v", topic, err)}
		}
		topic = t
		if !r.isInput(topic) {
			return nil, &BadRequestError{Msg: fmt.Sprintf("topic %s is not an input of function %s", topic, r.fqfn)}
		}
	}
	if r.mod == nil {
		return nil, &BadRequestError{Msg: fmt.Sprintf("function %s runs as a process: trigger is for WebAssembly functions (publish to its input instead)", r.fqfn)}
	}
	r.triggerMu.Lock()
	if r.trigger == nil {
		r.trigger = r.mod.NewInstance(r.env(r.log.With("instance", "trigger")))
	}
	outs, err := r.trigger.Call(&abi.Message{Topic: topic, Payload: value, PublishTime: nowMillis()})
	outs = append([]abi.Output(nil), outs...)
	r.triggerMu.Unlock()
	if ferr := r.state.flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	var first []byte
	for k := range outs {
		if k == 0 {
			first = outs[k].Payload
		}
		errc := make(chan error, 1)
		r.publish(ctx, &outs[k], func(err error) { errc <- err })
		select {
		case err := <-errc:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return first, nil
}

func (r *runner) isInput(topic string) bool {
	cfg := &r.rec.Config
	for _, in := range cfg.Inputs {
		if in == topic || strings.HasPrefix(topic, in+"-partition-") {
			return true
		}
	}
	if cfg.TopicsPattern != "" {
		// The pattern is "<domain>://<tenant>/<ns>/<regexp>", as the client
		// matches it against the namespace's topics.
		prefix, pat, _ := strings.Cut(cfg.TopicsPattern, "://")
		re, err := regexp.Compile("^" + pat + "$")
		return err == nil && strings.HasPrefix(topic, prefix+"://") && re.MatchString(strings.TrimPrefix(topic, prefix+"://"))
	}
	return false
}
