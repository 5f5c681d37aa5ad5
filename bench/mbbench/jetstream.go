package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// runJetStream is `mbbench produce` for NATS JetStream, on the official NATS
// Go client: one file-backed stream per topic (subject "<stream>.x"), one
// publisher per stream doing async publishes (PublishMsgAsync) with at most
// --max-pending PubAcks outstanding (the client's own
// WithPublishAsyncMaxPending, like the Pulsar producer's MaxPendingMessages),
// as fast as possible or at a fixed total --rate, optionally with a tailing
// consumer per stream. Each message is published, stored and acknowledged on
// its own: JetStream has no client-side batching of messages into one stored
// entry or one PubAck.
//
// Publish latency is the PublishMsgAsync call (including any stall on the
// pending limit) to the PubAck, from the send time stamped in the payload's
// first 8 bytes; end-to-end latency is that time to the consumer's handler.
// Publishers share one connection, consumers another.
func runJetStream(args []string) {
	fs := flag.NewFlagSet("jetstream", flag.ExitOnError)
	var cf commonFlags
	cf.register(fs)
	url := fs.String("url", "nats://127.0.0.1:4222", "server URL")
	topics := fs.Int("topics", 1, "number of streams (one subject each)")
	size := fs.Int("size", 128, "message size in bytes (at least 8: the send time is stamped in it)")
	dur := fs.Duration("duration", 20*time.Second, "measurement duration")
	warmup := fs.Duration("warmup", 3*time.Second, "warm-up before measuring")
	msgRate := fs.Float64("rate", 0, "total target rate in msg/s, spread evenly over the streams (0 = as fast as possible)")
	consume := fs.Bool("consume", false, "also consume with a tailing consumer per stream (end-to-end latency)")
	consumer := fs.String("consumer", "ordered", "tailing consumer: ordered (ephemeral, no acks) or durable (explicit ack of every message)")
	maxPending := fs.Int("max-pending", 10000, "max outstanding async publishes (PubAcks not yet received) per stream")
	receiverQueue := fs.Int("receiver-queue", 10000, "messages the consumer buffers ahead (PullMaxMessages; MaxAckPending when durable)")
	prefix := fs.String("stream-prefix", fmt.Sprintf("bench%d", time.Now().UnixNano()), "stream name prefix")
	fs.Parse(args)
	if *size < 8 {
		fatal(fmt.Errorf("--size must be at least 8"))
	}
	if *consumer != "ordered" && *consumer != "durable" {
		fatal(fmt.Errorf("--consumer must be ordered or durable"))
	}

	pubConn := natsConnect(*url, "mbbench-pub")
	defer pubConn.Close()
	var subConn *nats.Conn
	if *consume {
		subConn = natsConnect(*url, "mbbench-sub")
		defer subConn.Close()
	}

	var measuring atomic.Bool
	pub, e2e := newRecorder(), newRecorder()
	var sent, received, bytesSent, errs atomic.Int64
	// The ack handler runs on each publisher's ack goroutine; the payload
	// carries the send time.
	onAck := func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
		if !measuring.Load() {
			return
		}
		sent.Add(1)
		bytesSent.Add(int64(len(m.Data)))
		pub.add(time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(m.Data))))
	}
	onErr := func(_ jetstream.JetStream, _ *nats.Msg, err error) {
		if errs.Add(1) <= 3 {
			fmt.Fprintln(os.Stderr, "mbbench: publish:", err)
		}
	}

	setup, setupCancel := context.WithTimeout(context.Background(), time.Minute)
	defer setupCancel()
	admin, err := jetstream.New(pubConn)
	if err != nil {
		fatal(err)
	}
	streams := make([]string, *topics)
	publishers := make([]jetstream.JetStream, *topics)
	consumers := make([]jetstream.Consumer, *topics)
	setupStart := time.Now()
	parallel(*topics, 16, func(i int) {
		name := fmt.Sprintf("%s-%d", *prefix, i)
		streams[i] = name
		if _, err := admin.CreateStream(setup, jetstream.StreamConfig{
			Name: name, Subjects: []string{name + ".x"}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxBytes: -1, MaxMsgs: -1, Replicas: 1,
		}); err != nil {
			fatal(fmt.Errorf("stream %s: %w", name, err))
		}
		// One JetStream context per stream: each has its own pending-ack
		// limit and ack subscription, as each Pulsar producer has its own
		// pending queue.
		js, err := jetstream.New(pubConn, jetstream.WithPublishAsyncMaxPending(*maxPending),
			jetstream.WithPublishAsyncAckHandler(onAck), jetstream.WithPublishAsyncErrHandler(onErr))
		if err != nil {
			fatal(err)
		}
		publishers[i] = js
		if !*consume {
			return
		}
		sjs, err := jetstream.New(subConn)
		if err != nil {
			fatal(err)
		}
		var c jetstream.Consumer
		if *consumer == "ordered" {
			c, err = sjs.OrderedConsumer(setup, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
		} else {
			c, err = sjs.CreateOrUpdateConsumer(setup, name, jetstream.ConsumerConfig{
				Durable: "bench", DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: *receiverQueue,
			})
		}
		if err != nil {
			fatal(fmt.Errorf("consumer on %s: %w", name, err))
		}
		consumers[i] = c
	})
	if *topics > 16 {
		fmt.Fprintf(os.Stderr, "mbbench: %d streams set up in %v\n", *topics, time.Since(setupStart).Round(time.Millisecond))
	}

	var ccs []jetstream.ConsumeContext
	for _, c := range consumers {
		if c == nil {
			continue
		}
		durable := *consumer == "durable"
		cc, err := c.Consume(func(m jetstream.Msg) {
			if measuring.Load() {
				received.Add(1)
				if d := m.Data(); len(d) >= 8 {
					e2e.add(time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(d))))
				}
			}
			if durable {
				m.Ack() // fire and forget, like the Pulsar consumer's AckID
			}
		}, jetstream.PullMaxMessages(*receiverQueue))
		if err != nil {
			fatal(fmt.Errorf("consume: %w", err))
		}
		ccs = append(ccs, cc)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, js := range publishers {
		var limiter *rate.Limiter
		if *msgRate > 0 {
			per := *msgRate / float64(*topics)
			limiter = rate.NewLimiter(rate.Limit(per), int(per/100)+1)
		}
		subject := streams[i] + ".x"
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A stall longer than this on the pending limit is an error.
			stall := jetstream.WithStallWait(time.Minute)
			for ctx.Err() == nil {
				if limiter != nil && limiter.Wait(ctx) != nil {
					break
				}
				payload := make([]byte, *size)
				binary.LittleEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: payload}, stall); err != nil {
					onErr(js, nil, err)
					if errors.Is(err, nats.ErrConnectionClosed) {
						return
					}
				}
			}
		}()
	}
	time.Sleep(*warmup)
	before, errA := sampleProc(cf.pid)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(start).Seconds()
	after, errB := sampleProc(cf.pid)
	cancel()
	wg.Wait()
	// Let the last PubAcks arrive (they are not counted) before closing.
	for _, js := range publishers {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			fmt.Fprintf(os.Stderr, "mbbench: %d publishes still pending after 30 s\n", js.PublishAsyncPending())
		}
	}
	for _, cc := range ccs {
		cc.Stop()
	}

	r := emptyResult(cf.scenario, cf.system)
	r.MsgPerS = float64(sent.Load()) / elapsed
	r.MBPerS = float64(bytesSent.Load()) / elapsed / 1e6
	r.PubP50, r.PubP99, r.PubP999 = pub.q(0.5), pub.q(0.99), pub.q(0.999)
	r.Errors = errs.Load()
	r.Notes = fmt.Sprintf("nats.go async publish, %d pending max per stream, one PubAck per message", *maxPending)
	if *consume {
		r.E2EP50, r.E2EP99 = e2e.q(0.5), e2e.q(0.99)
		r.Notes += fmt.Sprintf("; %s consumer, consumed %s msg/s", *consumer, count(float64(received.Load())/elapsed))
	}
	brokerStats(&r, before, after, errA, errB)
	cf.save(r)
}

// natsConnect connects to url and fails the run on error.
func natsConnect(url, name string) *nats.Conn {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(0))
	if err != nil {
		fatal(fmt.Errorf("connect %s: %w", url, err))
	}
	return nc
}
