package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/supervise"
)

// runner runs one connector's instances.
type runner struct {
	m         *Manager
	kind      Kind
	rec       entry
	b         *Builtin
	log       *slog.Logger
	instances *supervise.Group[*instance]
}

// instance is one of a connector's parallel instances; each session is
// one run of the connector's code with its own producers or consumer.
type instance struct {
	*supervise.Instance
	r       *runner
	log     *slog.Logger
	metrics instanceMetrics

	received     atomic.Int64
	written      atomic.Int64
	extErrors    atomic.Int64
	sysErrors    atomic.Int64
	lastReceived atomic.Int64

	mu      sync.Mutex
	sysErrs []ExceptionEntry
	extErrs []ExceptionEntry
}

// recordError counts a failure: external (a send or write) or of the
// session (system).
func (i *instance) recordError(external bool, err error) {
	i.metrics.errors.Inc()
	i.SetLastError(err.Error())
	i.mu.Lock()
	defer i.mu.Unlock()
	if external {
		i.extErrors.Add(1)
		i.extErrs = supervise.AppendBounded(i.extErrs, err)
		return
	}
	i.sysErrors.Add(1)
	i.sysErrs = supervise.AppendBounded(i.sysErrs, err)
}

func (i *instance) took() {
	now := time.Now()
	i.received.Add(1)
	i.metrics.in.Inc()
	i.lastReceived.Store(now.UnixMilli())
	i.metrics.lastReceived.Set(float64(now.UnixMilli()) / 1000)
}

func (i *instance) delivered() {
	i.written.Add(1)
	i.metrics.out.Inc()
}

// Run runs sessions until the instance is stopped.
func (i *instance) Run() {
	i.Instance.Run(i.log, "connector", func(ctx context.Context) error {
		if i.r.kind == KindSource {
			return i.sourceSession(ctx)
		}
		return i.sinkSession(ctx)
	}, func(err error) {
		i.recordError(false, err)
		i.metrics.restarts.Inc()
	})
}

// settings resolves secrets and decodes the configs for a session.
func (i *instance) settings(ctx context.Context) (any, error) {
	cfgs, err := resolvedConfigs(ctx, i.r.b, &i.r.rec.Config, i.r.m.cfg.Vault)
	if err != nil {
		return nil, err
	}
	return i.r.b.validate(cfgs)
}

func (i *instance) sourceSession(ctx context.Context) error {
	r := i.r
	s, err := i.settings(ctx)
	if err != nil {
		return err
	}
	src := r.b.NewSource(s)
	var pmu sync.Mutex
	producers := map[string]pulsar.Producer{}
	defer func() {
		pmu.Lock()
		defer pmu.Unlock()
		for _, p := range producers {
			p.Close()
		}
	}()
	producer := func(topic string) (pulsar.Producer, error) {
		pmu.Lock()
		defer pmu.Unlock()
		if p := producers[topic]; p != nil {
			return p, nil
		}
		p, err := r.m.client.CreateProducer(pulsar.ProducerOptions{Topic: topic,
			BatchingMaxPublishDelay: 5 * time.Millisecond, MaxPendingMessages: 10000})
		if err != nil {
			return nil, fmt.Errorf("producer for %s: %w", topic, err)
		}
		producers[topic] = p
		return p, nil
	}
	env := &SourceEnv{Instance: i.ID, Parallelism: r.rec.Config.Parallelism, TopicName: r.rec.Config.TopicName,
		Tenant: r.rec.Config.Tenant, Namespace: r.rec.Config.Namespace, Name: r.rec.Config.Name,
		Log: i.log, Checkpoints: newCheckpoints(r.m.cfg.Meta, KindSource, r.rec.Config.FQN(), i.ID, i.metrics.checkpoints)}
	env.send = func(ctx context.Context, rec *Record, done func(error)) {
		i.took()
		topic := rec.Topic
		if topic == "" {
			topic = r.rec.Config.TopicName
		}
		p, err := producer(topic)
		if err != nil {
			i.recordError(true, err)
			done(err)
			return
		}
		msg := &pulsar.ProducerMessage{Payload: rec.Value, Key: rec.Key, Properties: rec.Properties, EventTime: rec.EventTime, Schema: rec.Schema}
		p.SendAsync(ctx, msg, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				i.recordError(true, fmt.Errorf("send to %s: %w", topic, err))
			} else {
				i.delivered()
			}
			done(err)
		})
	}
	env.flush = func() error {
		pmu.Lock()
		ps := make([]pulsar.Producer, 0, len(producers))
		for _, p := range producers {
			ps = append(ps, p)
		}
		pmu.Unlock()
		for _, p := range ps {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := p.FlushWithCtx(fctx)
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	}
	i.MarkRunning()
	return src.Run(ctx, env)
}

func (i *instance) consumerOptions() pulsar.ConsumerOptions {
	c := &i.r.rec.Config
	o := pulsar.ConsumerOptions{SubscriptionName: c.SourceSubscriptionName, ReceiverQueueSize: 10000,
		NackRedeliveryDelay: time.Second, Type: pulsar.Failover}
	if c.Parallelism > 1 {
		o.Type = pulsar.Shared
	}
	if len(c.Inputs) > 0 {
		o.Topics = c.Inputs
	} else {
		o.TopicsPattern = c.TopicsPattern
		o.AutoDiscoveryPeriod = 30 * time.Second
	}
	if c.SourceSubscriptionPosition == "Earliest" {
		o.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	return o
}

func (i *instance) sinkSession(ctx context.Context) error {
	r := i.r
	s, err := i.settings(ctx)
	if err != nil {
		return err
	}
	sink := r.b.NewSink(s)
	consumer, err := r.m.client.Subscribe(i.consumerOptions())
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() {
		if i.Unsubscribing() {
			if err := consumer.Unsubscribe(); err != nil {
				i.log.Warn("sink subscription not removed", "error", err)
			}
		}
		consumer.Close()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan pulsar.Message, 10000)
	recvErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := consumer.Receive(ctx)
			if err != nil {
				if ctx.Err() == nil {
					recvErr <- fmt.Errorf("receive: %w", err)
					cancel()
				}
				return
			}
			i.took()
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	env := &SinkEnv{Instance: i.ID, Parallelism: r.rec.Config.Parallelism, Log: i.log, Messages: msgs,
		Checkpoints: newCheckpoints(r.m.cfg.Meta, KindSink, r.rec.Config.FQN(), i.ID, i.metrics.checkpoints),
		ack: func(m pulsar.Message) {
			if err := consumer.Ack(m); err == nil {
				i.delivered()
			}
		},
		writeErr: func(err error) { i.recordError(true, err) },
		schemas:  r.m.cfg.Schemas,
	}
	i.MarkRunning()
	err = sink.Run(ctx, env)
	cancel()
	wg.Wait()
	select {
	case rerr := <-recvErr:
		return rerr
	default:
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return err
}

// startInstances starts the instances not running (all when ids is empty).
func (r *runner) startInstances(ids ...int) {
	r.instances.Start(func(core *supervise.Instance) *instance {
		return &instance{Instance: core, r: r, log: r.log.With("instance", core.ID),
			metrics: r.m.metrics.instance(r.kind, &r.rec.Config, core.ID)}
	}, ids...)
}

// stopInstances stops instances (all when ids is empty) and waits;
// unsubscribe removes a sink's subscription as the last one leaves.
func (r *runner) stopInstances(unsubscribe bool, ids ...int) {
	r.instances.Stop(unsubscribe, ids...)
}

// instanceAt returns instance id, nil when stopped.
func (r *runner) instanceAt(id int) *instance {
	i, _ := r.instances.At(id)
	return i
}
