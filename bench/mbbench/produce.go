package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"golang.org/x/time/rate"
)

// newClient returns a Pulsar client that logs only errors.
func newClient(url string) pulsar.Client {
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:              url,
		OperationTimeout: time.Minute,
		Logger:           plog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
	})
	if err != nil {
		fatal(err)
	}
	return client
}

// producerOptions are the client settings of every scenario: batching on,
// 1 ms max delay, up to 1,000 messages or 128 KiB per batch.
func producerOptions(topic string, batchDelay time.Duration, maxPending int) pulsar.ProducerOptions {
	return pulsar.ProducerOptions{
		Topic: topic, BatchingMaxPublishDelay: batchDelay, MaxPendingMessages: maxPending,
		BatchingMaxMessages: 1000, BatchingMaxSize: 128 << 10, SendTimeout: 60 * time.Second,
	}
}

// runProduce sends as fast as possible (or at --rate) to --topics topics for
// --duration after --warmup, optionally consuming with one tailing
// Exclusive consumer per topic. Publish latency is SendAsync to callback
// (including any wait for the client's pending queue); end-to-end latency is
// send time (in the payload's first 8 bytes) to Receive.
func runProduce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	var cf commonFlags
	cf.register(fs)
	url := fs.String("url", "pulsar://127.0.0.1:6650", "broker service URL")
	topics := fs.Int("topics", 1, "number of topics")
	size := fs.Int("size", 128, "message size in bytes")
	dur := fs.Duration("duration", 20*time.Second, "measurement duration")
	warmup := fs.Duration("warmup", 3*time.Second, "warm-up before measuring")
	msgRate := fs.Float64("rate", 0, "total target rate in msg/s, spread evenly over the topics (0 = as fast as possible)")
	consume := fs.Bool("consume", false, "also consume with a tailing consumer per topic (end-to-end latency)")
	consumeURL := fs.String("consume-url", "", "consume from this broker instead of --url (geo-replication: end-to-end latency across clusters)")
	maxPending := fs.Int("max-pending", 10000, "max pending messages per producer")
	receiverQueue := fs.Int("receiver-queue", 10000, "consumer receiver queue size")
	batchDelay := fs.Duration("batch-delay", time.Millisecond, "producer batching max publish delay")
	metricsURL := fs.String("metrics-url", "", "the broker's /metrics: report its own publish latency and fsync times over the window")
	remoteMetrics := fs.String("remote-metrics-url", "", "a second broker's /metrics: report the msg/s it stored in the window (geo-replication: what reached cluster b)")
	remotePid := fs.Int("remote-pid", 0, "a second broker's process id: report its CPU in the window")
	keys := fs.Int("keys", 0, "give each message a key from a space of this many (0: no key), e.g. to fill a topic for compaction")
	prefix := fs.String("topic-prefix", fmt.Sprintf("persistent://public/default/bench-%d", time.Now().UnixNano()), "topic name prefix")
	fs.Parse(args)

	client := newClient(*url)
	defer client.Close()
	consumerClient := client
	if *consumeURL != "" {
		consumerClient = newClient(*consumeURL)
		defer consumerClient.Close()
	}

	var measuring atomic.Bool
	pub, e2e := newRecorder(), newRecorder()
	var sent, received, bytesSent, errs atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stamp := *size >= 8

	// Create producers and consumers with a few workers: 1,000 topics one
	// after the other would take a while.
	producers := make([]pulsar.Producer, *topics)
	consumers := make([]pulsar.Consumer, *topics)
	setupStart := time.Now()
	parallel(*topics, 16, func(i int) {
		topic := fmt.Sprintf("%s-%d", *prefix, i)
		if *consume {
			c, err := consumerClient.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bench", ReceiverQueueSize: *receiverQueue})
			if err != nil {
				fatal(fmt.Errorf("subscribe %s: %w", topic, err))
			}
			consumers[i] = c
		}
		p, err := client.CreateProducer(producerOptions(topic, *batchDelay, *maxPending))
		if err != nil {
			fatal(fmt.Errorf("producer %s: %w", topic, err))
		}
		producers[i] = p
	})
	if *topics > 16 {
		fmt.Fprintf(os.Stderr, "mbbench: %d topics set up in %v\n", *topics, time.Since(setupStart).Round(time.Millisecond))
	}

	for _, c := range consumers {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return
				}
				if measuring.Load() {
					received.Add(1)
					if p := m.Payload(); stamp && len(p) >= 8 {
						e2e.add(time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(p))))
					}
				}
				c.AckID(m.ID())
			}
		}()
	}
	shared := make([]byte, *size)
	for _, p := range producers {
		var limiter *rate.Limiter
		if *msgRate > 0 {
			per := *msgRate / float64(*topics)
			limiter = rate.NewLimiter(rate.Limit(per), int(per/100)+1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			n := 0
			for ctx.Err() == nil {
				if limiter != nil && limiter.Wait(ctx) != nil {
					break
				}
				var key string
				if *keys > 0 {
					key = strconv.Itoa(n % *keys)
					n++
				}
				payload := shared
				start := time.Now()
				if stamp {
					payload = make([]byte, *size)
					binary.LittleEndian.PutUint64(payload, uint64(start.UnixNano()))
				}
				// Not ctx: messages still queued at the end complete instead
				// of failing (and logging) when the run stops.
				p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload, Key: key},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						if err != nil {
							errs.Add(1)
							return
						}
						if !measuring.Load() {
							return
						}
						sent.Add(1)
						bytesSent.Add(int64(len(payload)))
						pub.add(time.Since(start))
					})
			}
			p.FlushWithCtx(context.Background())
		}()
	}
	time.Sleep(*warmup)
	before, errA := sampleProc(cf.pid)
	window := startBrokerWindow(*metricsURL)
	remote := startRemoteWindow(*remoteMetrics, *remotePid)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(start).Seconds()
	after, errB := sampleProc(cf.pid)
	var remoteNotes Result
	remote.finish(&remoteNotes, elapsed)
	cancel()
	wg.Wait()

	r := emptyResult(cf.scenario, cf.system)
	r.MsgPerS = float64(sent.Load()) / elapsed
	r.MBPerS = float64(bytesSent.Load()) / elapsed / 1e6
	r.PubP50, r.PubP99, r.PubP999 = pub.q(0.5), pub.q(0.99), pub.q(0.999)
	r.Errors = errs.Load()
	if *consume {
		r.E2EP50, r.E2EP99 = e2e.q(0.5), e2e.q(0.99)
		r.Notes = fmt.Sprintf("consumed %s msg/s", count(float64(received.Load())/elapsed))
	}
	brokerStats(&r, before, after, errA, errB)
	window.finish(&r)
	r.Notes = joinNotes(r.Notes, remoteNotes.Notes)
	cf.save(r)
}

// parallel calls fn(0..n-1) on up to workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
