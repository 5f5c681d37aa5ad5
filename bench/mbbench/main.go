// Command mbbench is a load generator for MessageBus (or any Pulsar broker)
// built on the official Pulsar Go client: async batched sends to N topics,
// optionally with tailing consumers, reporting throughput and publish /
// end-to-end latency percentiles.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"golang.org/x/time/rate"
)

func main() {
	url := flag.String("url", "pulsar://127.0.0.1:6650", "broker service URL")
	topics := flag.Int("topics", 1, "number of topics")
	size := flag.Int("size", 128, "message size in bytes")
	dur := flag.Duration("duration", 20*time.Second, "measurement duration")
	warmup := flag.Duration("warmup", 3*time.Second, "warm-up before measuring")
	msgRate := flag.Float64("rate", 0, "total target rate in msg/s (0 = as fast as possible)")
	consume := flag.Bool("consume", false, "also consume with a tailing consumer per topic (end-to-end latency)")
	maxPending := flag.Int("max-pending", 10000, "max pending messages per producer")
	batchDelay := flag.Duration("batch-delay", time.Millisecond, "producer batching max publish delay")
	prefix := flag.String("topic-prefix", fmt.Sprintf("persistent://public/default/bench-%d", time.Now().UnixNano()), "topic name prefix")
	fsyncDir := flag.String("fsync-probe", "", "only measure the disk: median and p99 of 4 KiB write+fdatasync in this directory")
	flag.Parse()
	if *fsyncDir != "" {
		probeFsync(*fsyncDir)
		return
	}

	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: *url, Logger: plog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))})
	if err != nil {
		fatal(err)
	}
	defer client.Close()

	var measuring atomic.Bool
	pub := newRecorder()
	e2e := newRecorder()
	var sent, received, bytesSent atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var limiter *rate.Limiter
	if *msgRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(*msgRate), int(*msgRate/100)+1)
	}
	payload := make([]byte, *size)
	for i := 0; i < *topics; i++ {
		topic := fmt.Sprintf("%s-%d", *prefix, i)
		if *consume {
			c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bench", ReceiverQueueSize: 10000})
			if err != nil {
				fatal(err)
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
						e2e.add(time.Since(m.EventTime()))
					}
					c.AckID(m.ID())
				}
			}()
		}
		p, err := client.CreateProducer(pulsar.ProducerOptions{
			Topic: topic, BatchingMaxPublishDelay: *batchDelay, MaxPendingMessages: *maxPending,
			BatchingMaxMessages: 1000, BatchingMaxSize: 128 << 10, SendTimeout: 60 * time.Second,
		})
		if err != nil {
			fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			for ctx.Err() == nil {
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				start := time.Now()
				p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload, EventTime: start},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						if err != nil || !measuring.Load() {
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
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(start).Seconds()
	cancel()
	wg.Wait()

	fmt.Printf("topics=%d size=%d rate=%v consume=%v\n", *topics, *size, *msgRate, *consume)
	fmt.Printf("publish: %.0f msg/s  %.1f MB/s  latency ms p50=%.2f p99=%.2f p99.9=%.2f\n",
		float64(sent.Load())/elapsed, float64(bytesSent.Load())/elapsed/1e6, pub.q(0.5), pub.q(0.99), pub.q(0.999))
	if *consume {
		fmt.Printf("consume: %.0f msg/s  end-to-end ms p50=%.2f p99=%.2f\n",
			float64(received.Load())/elapsed, e2e.q(0.5), e2e.q(0.99))
	}
}

// recorder keeps the most recent latency samples (up to 1M) for percentiles.
type recorder struct {
	mu sync.Mutex
	s  []float64
	n  int
}

const reservoir = 1 << 20

func newRecorder() *recorder { return &recorder{s: make([]float64, 0, reservoir)} }

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	r.n++
	if len(r.s) < reservoir {
		r.s = append(r.s, float64(d.Microseconds())/1000)
	} else {
		r.s[r.n%reservoir] = float64(d.Microseconds()) / 1000
	}
	r.mu.Unlock()
}

func (r *recorder) q(p float64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.s) == 0 {
		return 0
	}
	sort.Float64s(r.s)
	return r.s[int(p*float64(len(r.s)-1))]
}

// probeFsync times 200 appends of 4 KiB each followed by fdatasync, the
// operation the journal's group commit waits for.
func probeFsync(dir string) {
	f, err := os.CreateTemp(dir, "fsync-probe")
	if err != nil {
		fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	r := newRecorder()
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fatal(err)
		}
		r.add(time.Since(start))
	}
	fmt.Printf("disk fdatasync (4 KiB append): p50=%.2f ms p99=%.2f ms\n", r.q(0.5), r.q(0.99))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mbbench:", err)
	os.Exit(1)
}
