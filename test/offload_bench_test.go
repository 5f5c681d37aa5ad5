package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
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

// TestOffloadBenchmark measures tiered storage end to end (docs/benchmarks.md):
// an `mb standalone` process, the Versity gateway and the official Go client
// on loopback. It runs only with MB_OFFLOAD_BENCH=1:
//
//	MB_OFFLOAD_BENCH=1 MB_OFFLOAD_BENCH_MESSAGES=1000000 MB_OFFLOAD_BENCH_SIZE=128 \
//	  go test -run TestOffloadBenchmark -v -timeout 60m ./test/
//
// Steps: write the backlog (batching producer, as mbbench's); restart the
// broker and evict its data dir from the page cache; catch up with a reader
// from earliest (local disk); offload everything while a producer publishes
// at full speed to another topic (offload MB/s, publish msg/s and p99), then
// publish as long again without an offload; local copies are deleted at once
// (deletion lag 0); for each cache budget, restart the broker (cold block
// cache), evict the gateway's files from the page cache and catch up again,
// now from the object store only, reading the broker's peak RSS after.
// MB_OFFLOAD_BENCH_PROFILE=file saves the broker's CPU profile of the first
// 2 s of the offload; MB_OFFLOAD_BENCH_HEAP=file its heap profile after each
// object-store catch-up (file.<cache size>); MB_OFFLOAD_BENCH_MAX_RATE sets
// --offload-max-rate, MB_OFFLOAD_BENCH_YIELD=false --background-yield=false;
// MB_S3TEST_DIR puts the gateway's files elsewhere.
func TestOffloadBenchmark(t *testing.T) {
	if os.Getenv("MB_OFFLOAD_BENCH") != "1" {
		t.Skip("set MB_OFFLOAD_BENCH=1 to run the tiered storage benchmark")
	}
	n := envInt(t, "MB_OFFLOAD_BENCH_MESSAGES", 1_000_000)
	size := envInt(t, "MB_OFFLOAD_BENCH_SIZE", 128)
	caches := strings.Fields(envStr("MB_OFFLOAD_BENCH_CACHES", "16777216 67108864 268435456"))
	rate := envInt(t, "MB_OFFLOAD_BENCH_RATE", 0)       // publish msg/s during the offload; 0: as fast as possible
	maxRate := envStr("MB_OFFLOAD_BENCH_MAX_RATE", "0") // --offload-max-rate
	heapOut := os.Getenv("MB_OFFLOAD_BENCH_HEAP")       // heap profiles after each object-store catch-up

	gw := s3test.Start(t)
	gw.Bucket(t, "bench", nil)
	dir := t.TempDir()
	args := func(cache string) []string {
		return []string{"--offload-driver", "s3", "--offload-bucket", "bench", "--offload-endpoint", gw.Endpoint,
			"--offload-path-style", "--offload-prefix", "mb", "--offload-deletion-lag-ms", "0", "--offload-cache-size", cache, "--offload-max-rate", maxRate, "--enable-pprof",
			"--background-yield=" + envStr("MB_OFFLOAD_BENCH_YIELD", "true"), "--background-nice", strconv.Itoa(pace.DefaultNice), "--background-sched-idle=true"}
	}
	p := startProc(t, dir, 0, 0, args(caches[0])...)
	topic := "persistent://public/default/offload-bench"
	client := newClient(t, p.brokerURL)
	start := time.Now()
	last := benchWrite(t, client, topic, n, size)
	t.Logf("wrote %d messages of %d B in %.1f s", n, size, time.Since(start).Seconds())
	client.Close()

	restart := func(cache string) {
		p.terminate(t)
		evict(t, dir)
		evict(t, gw.Dir)
		p = startProc(t, dir, p.brokerPort, p.httpPort, args(cache)...)
		client = newClient(t, p.brokerURL)
	}
	restart(caches[0])
	localRate, localMB := benchCatchUp(t, client, topic, n, size)
	hwm, _ := procMemory(t, p.cmd.Process.Pid)
	t.Logf("catch-up from local disk: %.0f msg/s, %.1f MB/s; broker peak RSS %.0f MiB", localRate, localMB, float64(hwm)/(1<<20))

	// Offload while publishing, then publish as long without.
	admin := newProcAdmin(t, p)
	pubTopic := topic + "-publish"
	offloaded := make(chan time.Duration, 1)
	if out := os.Getenv("MB_OFFLOAD_BENCH_PROFILE"); out != "" {
		// The broker's CPU profile of the first 2 s of the offload.
		go func() {
			resp, err := http.Get(p.webURL + "/debug/pprof/profile?seconds=2")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(out)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		}()
	}
	go func() {
		t0 := time.Now()
		if err := admin.Topics().Offload(topicName(t, topic), offloadID(last, 1)); err != nil {
			t.Error(err)
			offloaded <- 0
			return
		}
		for {
			st, err := admin.Topics().OffloadStatus(topicName(t, topic))
			if err != nil || st.Status == utils.ERROR {
				t.Errorf("offload: %+v %v", st, err)
				break
			}
			if st.Status == utils.SUCCESS {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		offloaded <- time.Since(t0)
	}()
	fsync0 := fsyncBuckets(t, p.webURL)
	withRate, withP99, took := benchPublish(t, client, pubTopic, size, rate, offloaded, 0)
	fsync1 := fsyncBuckets(t, p.webURL)
	var st struct{ OffloadedStorageSize int64 }
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(p.webURL, topic)+"/stats", "", http.StatusOK)), &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("offload: %d bytes in %.1f s: %.1f MB/s", st.OffloadedStorageSize, took.Seconds(), float64(st.OffloadedStorageSize)/1e6/took.Seconds())
	withoutRate, withoutP99, _ := benchPublish(t, client, pubTopic, size, rate, nil, took)
	fsync2 := fsyncBuckets(t, p.webURL)
	t.Logf("journal fsync p99 (mb_journal_fsync_seconds, bucket bound): %.1f ms while offloading, %.1f ms without",
		1000*bucketP99(fsync0, fsync1), 1000*bucketP99(fsync1, fsync2))
	t.Logf("publish while offloading: %.0f msg/s, p99 %.1f ms; without: %.0f msg/s, p99 %.1f ms (%.1f s each)",
		withRate, ms(withP99), withoutRate, ms(withoutP99), took.Seconds())
	adminEventually(t, "local copies deleted", func() bool {
		var is struct{ Ledgers []struct{ Entries int64 } }
		return json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(p.webURL, topic)+"/internalStats", "", http.StatusOK)), &is) == nil &&
			len(is.Ledgers) == 2 && is.Ledgers[1].Entries == 0
	})

	for _, cache := range caches {
		restart(cache)
		rate, mb := benchCatchUp(t, client, topic, n, size)
		hwm, rss := procMemory(t, p.cmd.Process.Pid)
		if heapOut != "" {
			saveURL(t, p.webURL+"/debug/pprof/heap", heapOut+"."+cache)
		}
		t.Logf("catch-up from the object store, cold block cache, --offload-cache-size %s: %.0f msg/s, %.1f MB/s (%.0f%% of local); broker peak RSS %.0f MiB, RSS after %.0f MiB",
			cache, rate, mb, 100*rate/localRate, float64(hwm)/(1<<20), float64(rss)/(1<<20))
	}
}

// saveURL writes the body of a GET of url to file.
func saveURL(t *testing.T, url, file string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Error(err)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func benchProducer(t *testing.T, client pulsar.Client, topic string) pulsar.Producer {
	t.Helper()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond,
		MaxPendingMessages: 10000, BatchingMaxMessages: 1000, BatchingMaxSize: 128 << 10, SendTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// benchWrite writes n messages and returns the last one's id.
func benchWrite(t *testing.T, client pulsar.Client, topic string, n, size int) pulsar.MessageID {
	t.Helper()
	p := benchProducer(t, client, topic)
	defer p.Close()
	payload := make([]byte, size)
	var (
		mu   sync.Mutex
		last pulsar.MessageID
		errs int
	)
	for range n {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
			} else if last == nil || id.LedgerID() > last.LedgerID() || id.LedgerID() == last.LedgerID() && id.EntryID() > last.EntryID() {
				last = id
			}
		})
	}
	if err := p.FlushWithCtx(context.Background()); err != nil {
		t.Fatal(err)
	}
	if errs > 0 {
		t.Fatalf("%d send errors", errs)
	}
	return last
}

// benchCatchUp reads n messages from earliest with a reader: msg/s and MB/s
// of payload from creating the reader to the last message.
func benchCatchUp(t *testing.T, client pulsar.Client, topic string, n, size int) (float64, float64) {
	t.Helper()
	start := time.Now()
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID(), ReceiverQueueSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for i := range n {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", i, n, err)
		}
		if len(m.Payload()) != size {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Payload()), size)
		}
	}
	el := time.Since(start).Seconds()
	return float64(n) / el, float64(n) * float64(size) / 1e6 / el
}

// benchPublish publishes at rate msg/s (0: as fast as the client allows)
// until stop yields (or for d): msg/s, p99 of SendAsync to receipt, and the
// time taken.
func benchPublish(t *testing.T, client pulsar.Client, topic string, size, rate int, stop <-chan time.Duration, d time.Duration) (float64, time.Duration, time.Duration) {
	t.Helper()
	p := benchProducer(t, client, topic)
	defer p.Close()
	payload := make([]byte, size)
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	start := time.Now()
	took := time.Duration(0)
	for sent := 0; ; sent++ {
		if sent%1000 == 0 {
			if stop != nil {
				select {
				case took = <-stop:
				default:
				}
			} else if time.Since(start) >= d {
				took = d
			}
			if took > 0 {
				break
			}
		}
		if rate > 0 {
			if wait := time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(rate))); wait > 0 {
				time.Sleep(wait) // pacing the load, not waiting for an event
			}
		}
		t0 := time.Now()
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
			l := time.Since(t0)
			mu.Lock()
			lats = append(lats, l)
			mu.Unlock()
		})
	}
	if err := p.FlushWithCtx(context.Background()); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lats)
	return float64(len(lats)) / el.Seconds(), lats[len(lats)*99/100], took
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// evict drops the files under dir from the page cache (fsync, then
// posix_fadvise DONTNEED), as mbbench evict does.
func evict(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return nil // deleted meanwhile
		}
		defer f.Close()
		f.Sync()
		const fadvDontNeed = 4
		syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// procMemory returns VmHWM and VmRSS of a process, in bytes.
func procMemory(t *testing.T, pid int) (hwm, rss int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = kb << 10
		case "VmRSS:":
			rss = kb << 10
		}
	}
	return hwm, rss
}

// fsyncBuckets reads the cumulative buckets of mb_journal_fsync_seconds.
func fsyncBuckets(t *testing.T, webURL string) map[float64]float64 {
	t.Helper()
	return histBuckets(expectHTTP(t, http.MethodGet, webURL+"/metrics", "", http.StatusOK), "mb_journal_fsync_seconds")
}

// histBuckets reads the cumulative buckets of histogram name (without
// labels) from a Prometheus text exposition.
func histBuckets(metrics, name string) map[float64]float64 {
	out := map[float64]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(count), 64)
		if err1 == nil && err2 == nil {
			out[bound] = n
		}
	}
	return out
}

// bucketP99 is the upper bound of the bucket holding the 99th percentile
// of the observations between two readings.
func bucketP99(a, b map[float64]float64) float64 {
	bounds := slices.Sorted(maps.Keys(b))
	if len(bounds) == 0 {
		return 0
	}
	total := b[bounds[len(bounds)-1]] - a[bounds[len(bounds)-1]]
	for _, le := range bounds {
		if b[le]-a[le] >= 0.99*total {
			return le
		}
	}
	return bounds[len(bounds)-1]
}

// bucketMax is the upper bound of the highest bucket that got an
// observation between two readings (0: none).
func bucketMax(a, b map[float64]float64) float64 {
	bounds := slices.Sorted(maps.Keys(b))
	for i := len(bounds) - 1; i >= 0; i-- {
		below := 0.0 // the cumulative count of the bucket below
		if i > 0 {
			below = b[bounds[i-1]] - a[bounds[i-1]]
		}
		if b[bounds[i]]-a[bounds[i]] > below {
			return bounds[i]
		}
	}
	return 0
}

// quantile estimates quantile q of the observations between two readings
// of a histogram as Prometheus's histogram_quantile does: linear
// interpolation inside the bucket that holds it.
func quantile(q float64, a, b map[float64]float64) float64 {
	bounds := slices.Sorted(maps.Keys(b))
	if len(bounds) == 0 {
		return 0
	}
	total := b[bounds[len(bounds)-1]] - a[bounds[len(bounds)-1]]
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := b[le] - a[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if n == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(n-below)
		}
		lower, below = le, n
	}
	return bounds[len(bounds)-1]
}
