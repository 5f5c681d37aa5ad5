package test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/messagebus/messagebus/internal/pace"
)

// TestCompactionPublishBenchmark measures publishing while a compaction
// runs (docs/benchmarks.md). It runs only with MB_COMPACTION_BENCH=1:
//
//	MB_COMPACTION_BENCH=1 MB_COMPACTION_BENCH_MESSAGES=1000000 MB_COMPACTION_BENCH_KEYS=100000 \
//	  MB_COMPACTION_BENCH_RATE=20000 go test -run TestCompactionPublishBenchmark -v -timeout 60m ./test/
//
// Steps: fill a keyed topic (batching producer, 100-byte values, keys
// round-robin) in an `mb standalone` process; compact it while a producer
// publishes 128 B messages to another topic at MB_COMPACTION_BENCH_RATE
// msg/s (0: as fast as possible) until the compaction reports SUCCESS; then
// publish as long again without a compaction: msg/s and p99 with and without.
// MB_COMPACTION_BENCH_MAX_RATE sets --compaction-max-rate,
// MB_COMPACTION_BENCH_YIELD=false sets --background-yield=false.
func TestCompactionPublishBenchmark(t *testing.T) {
	if os.Getenv("MB_COMPACTION_BENCH") != "1" {
		t.Skip("set MB_COMPACTION_BENCH=1 to run the compaction publish benchmark")
	}
	n := envInt(t, "MB_COMPACTION_BENCH_MESSAGES", 1_000_000)
	keys := envInt(t, "MB_COMPACTION_BENCH_KEYS", 100_000)
	rate := envInt(t, "MB_COMPACTION_BENCH_RATE", 0)
	p := startProc(t, t.TempDir(), 0, 0, "--compaction-max-rate", envStr("MB_COMPACTION_BENCH_MAX_RATE", "0"),
		"--background-yield="+envStr("MB_COMPACTION_BENCH_YIELD", "true"), "--background-nice", strconv.Itoa(pace.DefaultNice), "--background-sched-idle=true")
	client := newClient(t, p.brokerURL)
	topic := "persistent://public/default/compaction-bench"
	prod := benchProducer(t, client, topic)
	value := make([]byte, 100)
	var (
		wg   sync.WaitGroup
		errs int
		mu   sync.Mutex
	)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: fmt.Sprintf("key-%d", i%keys), Payload: value},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
			})
	}
	wg.Wait()
	prod.Close()
	if errs > 0 {
		t.Fatalf("%d send errors", errs)
	}
	t.Logf("wrote %d keyed messages (%d keys) in %.1f s", n, keys, time.Since(start).Seconds())

	admin := newProcAdmin(t, p)
	tn := topicName(t, topic)
	compacted := make(chan time.Duration, 1)
	go func() {
		t0 := time.Now()
		if err := admin.Topics().Compact(tn); err != nil {
			t.Error(err)
			compacted <- time.Millisecond
			return
		}
		for {
			st, err := admin.Topics().CompactStatus(tn)
			if err != nil || st.Status == utils.ERROR {
				t.Errorf("compaction: %+v %v", st, err)
				break
			}
			if st.Status == utils.SUCCESS {
				break
			}
			time.Sleep(20 * time.Millisecond) // polling the status, as pulsar-admin does
		}
		compacted <- time.Since(t0)
	}()
	pubTopic := topic + "-publish"
	withRate, withP99, took := benchPublish(t, client, pubTopic, 128, rate, compacted, 0)
	withoutRate, withoutP99, _ := benchPublish(t, client, pubTopic, 128, rate, nil, took)
	t.Logf("compaction took %.1f s", took.Seconds())
	t.Logf("publish while compacting: %.0f msg/s, p99 %.1f ms; without: %.0f msg/s, p99 %.1f ms (%.1f s each)",
		withRate, ms(withP99), withoutRate, ms(withoutP99), took.Seconds())
}
