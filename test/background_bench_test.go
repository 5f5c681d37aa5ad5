package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// The rounds benchmarks measure publish p99 with and without background
// work (a compaction, an offload) in one broker, alternating the two
// windows several times so that a ratio per pair and their median can be
// given (docs/benchmarks.md, "Publish p99 during background work"). Each
// round fills a fresh topic (outside the windows, followed by a sync so
// that its dirty pages are not written back during them, and by
// MB_BG_BENCH_SETTLE_MS of unmeasured publishing), then publishes
// at MB_BG_BENCH_RATE msg/s of MB_BG_BENCH_SIZE bytes while the work runs
// and, as long again, without it; odd rounds take the window without first.
// Two p99s are taken per window: the client's (send to receipt, in this
// process, which shares the 2 cores) and the broker's own
// (mb_publish_latency_seconds: SEND read to receipt queued, fsync included,
// interpolated inside its bucket as Prometheus's histogram_quantile does).
//
//	MB_COMPACTION_BENCH=1 MB_BG_BENCH_ROUNDS=6 MB_COMPACTION_BENCH_MESSAGES=1000000 MB_COMPACTION_BENCH_KEYS=100000 \
//	  go test -run TestCompactionPublishRounds -v -timeout 60m ./test/
//	MB_OFFLOAD_BENCH=1 MB_BG_BENCH_ROUNDS=6 MB_OFFLOAD_BENCH_MESSAGES=300000 MB_OFFLOAD_BENCH_SIZE=1024 [MB_S3TEST_DIR=/dev/shm] \
//	  go test -run TestOffloadPublishRounds -v -timeout 60m ./test/
//
// The offload benchmark runs the S3 gateway at idle CPU priority, standing
// for a remote store; MB_OFFLOAD_BENCH_GATEWAY=local runs it at normal
// priority. MB_BG_BENCH_ARGS adds broker flags (space-separated); MB_BG_BENCH_PROFILE=file
// saves the broker's CPU profile of the first 5 s of the first round's work.

// bgRound is one pair of windows.
type bgRound struct {
	took                  time.Duration
	with, without         time.Duration // publish p99
	withRate, withoutRate float64
	fsyncWith, fsyncWo    float64 // journal fsync p99 (bucket bound), s
	brokerWith, brokerWo  float64 // broker's publish latency p99 (interpolated in its bucket), s
	groupWith, groupWo    float64 // mean bytes per journal group commit
	// The Go runtime's view of the broker: goroutine run latency p99
	// (runnable to running) and the longest GC stop-the-world stopping
	// latency (deciding to stop until every P stopped), s.
	schedWith, schedWo   float64
	gcStopWith, gcStopWo float64
	gcWith, gcWo         float64 // GC cycles in the window
	allocWith, allocWo   float64 // MB allocated in the window
	diskWith, diskWo     diskIO  // the machine's block devices in the window
}

// diskIO is what the machine's disks did, summed over /sys/block's devices
// (loop and ram devices left out), in MB.
type diskIO struct{ read, written, discarded float64 }

func readDiskIO() diskIO {
	var d diskIO
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return d
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + f[2]); err != nil {
			continue // a partition
		}
		sectors := func(i int) float64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseFloat(f[i], 64)
			return v * 512 / 1e6
		}
		d.read += sectors(5)
		d.written += sectors(9)
		d.discarded += sectors(16)
	}
	return d
}

func (d diskIO) since(before diskIO) diskIO {
	return diskIO{d.read - before.read, d.written - before.written, d.discarded - before.discarded}
}

func (d diskIO) String() string {
	return fmt.Sprintf("%.0f/%.0f/%.0f", d.read, d.written, d.discarded)
}

// bgArgs are the broker flags of a benchmark of background work: the
// product's default nice value and SCHED_IDLE (the harness's are 1 and
// off, for CI), 16 MiB journal segments, then MB_BG_BENCH_ARGS, which may
// override them. With the default 128 MiB segments the zero-fill of the
// spare that a round's fill used up (about 150 MB written, synced in
// chunks) landed in whichever window came next, with or without the work:
// the rate of zero-filling per byte published is the same, but in smaller
// pieces spread over the windows.
func bgArgs() []string {
	return append([]string{"--background-nice", strconv.Itoa(pace.DefaultNice), "--background-sched-idle=true",
		"--journal-segment-size", strconv.Itoa(16 << 20)}, strings.Fields(os.Getenv("MB_BG_BENCH_ARGS"))...)
}

// runRounds runs the alternating windows: fill(i) prepares round i outside
// the windows, work(i) runs its background work and returns when done.
func runRounds(t *testing.T, p *proc, client pulsar.Client, fill func(i int), work func(i int) time.Duration) {
	rounds := envInt(t, "MB_BG_BENCH_ROUNDS", 6)
	rate := envInt(t, "MB_BG_BENCH_RATE", 10000)
	size := envInt(t, "MB_BG_BENCH_SIZE", 128)
	settle := time.Duration(envInt(t, "MB_BG_BENCH_SETTLE_MS", 5000)) * time.Millisecond
	pubTopic := "persistent://public/default/bg-bench-publish"
	// Warm up the producer path (topic creation, connections).
	benchPublish(t, client, pubTopic, size, rate, nil, time.Second)
	var res []bgRound
	last := 5 * time.Second
	// The broker's publish latency histogram summed over all windows with
	// the work, and over all without: one p99 each, from many more
	// samples than a window's.
	pooledWith, pooledWo := map[float64]float64{}, map[float64]float64{}
	pool := func(into, a, b map[float64]float64) {
		for le, n := range b {
			into[le] += n - a[le]
		}
	}
	for i := range rounds {
		fill(i)
		syscall.Sync()
		// Neither window is the first after the fill: the first seconds
		// after it had a broker p99 up to 67 ms, with or without the work,
		// growing over the rounds (30 rounds, session 14), which decided
		// the ratio by the windows' order. The fill's garbage in this
		// process is collected now, not in a window.
		runtime.GC()
		benchPublish(t, client, pubTopic, size, rate, nil, settle)
		var r bgRound
		withWindow := func() {
			done := make(chan time.Duration, 1)
			if out := os.Getenv("MB_BG_BENCH_PROFILE"); out != "" && i == 0 {
				go saveURL(t, p.webURL+"/debug/pprof/profile?seconds=5", out)
			}
			go func() { done <- work(i) }()
			d0 := readDiskIO()
			m0 := journalMetrics(t, p.webURL)
			r.withRate, r.with, r.took = benchPublish(t, client, pubTopic, size, rate, done, 0)
			m1 := journalMetrics(t, p.webURL)
			r.diskWith = readDiskIO().since(d0)
			r.fsyncWith, r.groupWith = bucketP99(m0.fsync, m1.fsync), m1.groupBytes(m0)
			r.brokerWith = quantile(0.99, m0.publish, m1.publish)
			pool(pooledWith, m0.publish, m1.publish)
			r.schedWith, r.gcStopWith = bucketP99(m0.sched, m1.sched), bucketMax(m0.gcStop, m1.gcStop)
			r.gcWith, r.allocWith = m1.gcs-m0.gcs, (m1.allocs-m0.allocs)/1e6
			last = r.took
		}
		withoutWindow := func() {
			d0 := readDiskIO()
			m0 := journalMetrics(t, p.webURL)
			r.withoutRate, r.without, _ = benchPublish(t, client, pubTopic, size, rate, nil, last)
			m1 := journalMetrics(t, p.webURL)
			r.diskWo = readDiskIO().since(d0)
			r.fsyncWo, r.groupWo = bucketP99(m0.fsync, m1.fsync), m1.groupBytes(m0)
			r.brokerWo = quantile(0.99, m0.publish, m1.publish)
			pool(pooledWo, m0.publish, m1.publish)
			r.schedWo, r.gcStopWo = bucketP99(m0.sched, m1.sched), bucketMax(m0.gcStop, m1.gcStop)
			r.gcWo, r.allocWo = m1.gcs-m0.gcs, (m1.allocs-m0.allocs)/1e6
		}
		if i%2 == 0 {
			withWindow()
			withoutWindow()
		} else {
			withoutWindow()
			withWindow()
		}
		t.Logf("round %d (%s first): work %.1f s; publish p99 %.1f ms with (%.0f msg/s), %.1f ms without (%.0f msg/s): %.2f×; broker publish p99 %.2f / %.2f ms; journal fsync p99 %.1f / %.1f ms, mean group commit %.0f / %.0f B; goroutine run latency p99 %.2f / %.2f ms, GC stopping max %.2f / %.2f ms, GC cycles %.0f / %.0f, allocated %.0f / %.0f MB; disk MB read/written/discarded %s / %s; load %s",
			i, map[bool]string{true: "with", false: "without"}[i%2 == 0], r.took.Seconds(), ms(r.with), r.withRate, ms(r.without), r.withoutRate,
			float64(r.with)/float64(r.without), 1000*r.brokerWith, 1000*r.brokerWo, 1000*r.fsyncWith, 1000*r.fsyncWo, r.groupWith, r.groupWo,
			1000*r.schedWith, 1000*r.schedWo, 1000*r.gcStopWith, 1000*r.gcStopWo, r.gcWith, r.gcWo, r.allocWith, r.allocWo, r.diskWith, r.diskWo, loadAvg())
		res = append(res, r)
	}
	ratios, broker, rates := make([]float64, len(res)), make([]float64, len(res)), make([]float64, len(res))
	for i, r := range res {
		ratios[i] = float64(r.with) / float64(r.without)
		broker[i] = r.brokerWith / r.brokerWo
		rates[i] = r.withRate / r.withoutRate
	}
	slices.Sort(ratios)
	slices.Sort(broker)
	slices.Sort(rates)
	// With MB_BG_BENCH_RATE=0 the producer publishes as fast as it can:
	// the rate ratio is then the throughput kept while the work runs.
	t.Logf("publish rate ratios with/without, sorted: %.3f; median %.3f", rates, median(rates))
	t.Logf("p99 ratios with/without, sorted: %.2f; median %.2f", ratios, median(ratios))
	t.Logf("broker publish p99 ratios with/without, sorted: %.2f; median %.2f", broker, median(broker))
	pw, pwo := quantile(0.99, nil, pooledWith), quantile(0.99, nil, pooledWo)
	t.Logf("broker publish p99 over all windows with / without: %.2f / %.2f ms: %.2f", 1000*pw, 1000*pwo, pw/pwo)
}

func median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// jmetrics is a reading of the journal's metrics.
type jmetrics struct {
	fsync, publish  map[float64]float64
	sched, gcStop   map[float64]float64
	syncs, groupSum float64
	gcs, allocs     float64 // GC cycles, heap bytes allocated
}

// groupBytes is the mean bytes per group commit since an earlier reading.
func (m jmetrics) groupBytes(before jmetrics) float64 {
	if n := m.syncs - before.syncs; n > 0 {
		return (m.groupSum - before.groupSum) / n
	}
	return 0
}

func journalMetrics(t *testing.T, webURL string) jmetrics {
	t.Helper()
	text := expectHTTP(t, http.MethodGet, webURL+"/metrics", "", http.StatusOK)
	m := jmetrics{fsync: histBuckets(text, "mb_journal_fsync_seconds"), publish: histBuckets(text, "mb_publish_latency_seconds"),
		sched: histBuckets(text, "go_sched_latencies_seconds"), gcStop: histBuckets(text, "go_sched_pauses_stopping_gc_seconds")}
	for _, line := range strings.Split(text, "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, "mb_journal_fsync_seconds_count %g", &v); err == nil {
			m.syncs = v
		}
		if _, err := fmt.Sscanf(line, "mb_journal_group_bytes_sum %g", &v); err == nil {
			m.groupSum = v
		}
		if _, err := fmt.Sscanf(line, "go_gc_cycles_total_gc_cycles_total %g", &v); err == nil {
			m.gcs = v
		}
		if _, err := fmt.Sscanf(line, "go_gc_heap_allocs_bytes_total %g", &v); err == nil {
			m.allocs = v
		}
	}
	return m
}

// TestCompactionPublishRounds: each round fills a keyed topic and compacts
// it while publishing (see runRounds).
func TestCompactionPublishRounds(t *testing.T) {
	if os.Getenv("MB_COMPACTION_BENCH") != "1" {
		t.Skip("set MB_COMPACTION_BENCH=1 to run the compaction publish benchmark")
	}
	n := envInt(t, "MB_COMPACTION_BENCH_MESSAGES", 1_000_000)
	keys := envInt(t, "MB_COMPACTION_BENCH_KEYS", 100_000)
	p := startProc(t, t.TempDir(), 0, 0, append([]string{"--enable-pprof"}, bgArgs()...)...)
	client := newClient(t, p.brokerURL)
	admin := newProcAdmin(t, p)
	topic := func(i int) string { return fmt.Sprintf("persistent://public/default/compaction-rounds-%d", i) }
	fill := func(i int) {
		prod := benchProducer(t, client, topic(i))
		defer prod.Close()
		value := make([]byte, 100)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs int
		)
		for j := range n {
			wg.Add(1)
			prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: fmt.Sprintf("key-%d", j%keys), Payload: value},
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
		if errs > 0 {
			t.Fatalf("%d send errors", errs)
		}
	}
	work := func(i int) time.Duration {
		t0 := time.Now()
		tn := topicName(t, topic(i))
		if err := admin.Topics().Compact(tn); err != nil {
			t.Error(err)
			return time.Since(t0)
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
		return time.Since(t0)
	}
	runRounds(t, p, client, fill, work)
}

// TestOffloadPublishRounds: each round writes a topic, evicts the data dir
// from the page cache (offloads read old data, which is on disk), and
// offloads it while publishing (see runRounds). MB_S3TEST_DIR=/dev/shm
// puts the gateway's files on tmpfs: the object store on another device,
// as a real S3 is on other machines. The deletion lag is the default (4
// h), as in production: local copies are not deleted during the windows.
func TestOffloadPublishRounds(t *testing.T) {
	if os.Getenv("MB_OFFLOAD_BENCH") != "1" {
		t.Skip("set MB_OFFLOAD_BENCH=1 to run the tiered storage benchmark")
	}
	n := envInt(t, "MB_OFFLOAD_BENCH_MESSAGES", 300_000)
	size := envInt(t, "MB_OFFLOAD_BENCH_SIZE", 1024)
	// The gateway stands for a remote store: its CPU is not the broker's
	// (s3test.Idle); MB_OFFLOAD_BENCH_GATEWAY=local runs it at normal
	// priority, competing with the broker for the 2 cores.
	var opts []s3test.Option
	if os.Getenv("MB_OFFLOAD_BENCH_GATEWAY") != "local" {
		opts = append(opts, s3test.Idle())
	}
	gw := s3test.Start(t, opts...)
	gw.Bucket(t, "bench", nil)
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0, append([]string{"--offload-driver", "s3", "--offload-bucket", "bench", "--offload-endpoint", gw.Endpoint,
		"--offload-path-style", "--offload-prefix", "mb", "--enable-pprof"}, bgArgs()...)...)
	client := newClient(t, p.brokerURL)
	admin := newProcAdmin(t, p)
	topic := func(i int) string { return fmt.Sprintf("persistent://public/default/offload-rounds-%d", i) }
	lasts := map[int]pulsar.MessageID{}
	fill := func(i int) {
		lasts[i] = benchWrite(t, client, topic(i), n, size)
		evict(t, dir)
	}
	work := func(i int) time.Duration {
		t0 := time.Now()
		tn := topicName(t, topic(i))
		if err := admin.Topics().Offload(tn, offloadID(lasts[i], 1)); err != nil {
			t.Error(err)
			return time.Since(t0)
		}
		for {
			st, err := admin.Topics().OffloadStatus(tn)
			if err != nil || st.Status == utils.ERROR {
				t.Errorf("offload: %+v %v", st, err)
				break
			}
			if st.Status == utils.SUCCESS {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(t0)
	}
	t.Logf("gateway directory: %s", gw.Dir)
	runRounds(t, p, client, fill, work)
}
