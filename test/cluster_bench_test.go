package test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestClusterBenchmark measures a 3-broker cluster against the local
// gateway (MB_CLUSTER_BENCH=1): produce msg/s and publish latency, etcd
// transactions per WAL object, and failover time (kill -9 of the owner to
// the first acknowledged send). docs/benchmarks.md has the numbers.
func TestClusterBenchmark(t *testing.T) {
	if os.Getenv("MB_CLUSTER_BENCH") == "" {
		t.Skip("set MB_CLUSTER_BENCH=1 to run the cluster benchmark")
	}
	// MB_CLUSTER_BENCH_ARGS adds broker flags (e.g. --wal-max-inflight=1).
	c := startCluster(t, 3, append([]string{"--log-level", "warn"}, strings.Fields(os.Getenv("MB_CLUSTER_BENCH_ARGS"))...)...)
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, size := range []int{128, 1024} {
		rate := benchProduce(t, c, client, size, 0, 10*time.Second)
		benchProduce(t, c, client, size, rate/2, 10*time.Second)
	}
	var txns, wals float64
	for _, p := range c.brokers {
		txns += scrape(t, p.webURL, "mb_cluster_etcd_txns_total")
		wals += scrape(t, p.webURL, "mb_cluster_wal_objects_total")
	}
	t.Logf("etcd transactions %.0f, WAL objects %.0f: %.2f transactions per WAL object (cursor checkpoints and topic loads included)", txns, wals, txns/wals)

	trials := 5
	if n, err := strconv.Atoi(os.Getenv("MB_CLUSTER_BENCH_TRIALS")); err == nil {
		trials = n
	}
	var times []time.Duration
	for i := range trials {
		times = append(times, failoverTrial(t, c, client, i))
	}
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	t.Logf("failover (kill -9 of the owner to the first acknowledged send), %d trials: median %v, max %v, all %v",
		len(times), times[len(times)/2], times[len(times)-1], times)
}

// benchProduce sends size-byte messages to 6 topics (spread over the
// brokers) for d, at most rate msg/s in total (0: as fast as possible).
func benchProduce(t *testing.T, c *testCluster, client pulsar.Client, size, rate int, d time.Duration) int {
	const topics = 6
	payload := make([]byte, size)
	var sent, acked atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := range topics {
		p, err := client.CreateProducer(pulsar.ProducerOptions{
			Topic:              fmt.Sprintf("persistent://public/default/bench-%d-%d-%d", size, rate, i),
			MaxPendingMessages: 5000, BatchingMaxPublishDelay: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			per := float64(rate) / topics
			start := time.Now()
			for n := 0; time.Now().Before(end); n++ {
				if rate > 0 {
					if ahead := time.Duration(float64(n)/per*float64(time.Second)) - time.Since(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
				at := time.Now()
				sent.Add(1)
				p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						if err != nil {
							return
						}
						acked.Add(1)
						mu.Lock()
						lat = append(lat, time.Since(at))
						mu.Unlock()
					})
			}
			p.FlushWithCtx(context.Background())
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("nothing acknowledged")
	}
	got := int(float64(acked.Load()) / d.Seconds())
	t.Logf("%d B, target %s: %d msg/s acknowledged, publish latency p50 %v p99 %v",
		size, map[bool]string{true: "max", false: strconv.Itoa(rate) + " msg/s"}[rate == 0], got,
		lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*99/100].Round(100*time.Microsecond))
	return got
}

// failoverTrial kills the owner of a busy topic and measures the time to
// the first acknowledged send after it, then starts a broker again.
func failoverTrial(t *testing.T, c *testCluster, client pulsar.Client, i int) time.Duration {
	topic := fmt.Sprintf("persistent://public/default/failover-%d-%d", i, time.Now().UnixNano())
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	owner := c.owner(topic)
	killed := time.Now()
	c.brokers[owner].cmd.Process.Signal(syscall.SIGKILL)
	<-c.brokers[owner].exited
	c.down[owner] = true
	if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	d := time.Since(killed)
	// The same broker comes back once its lease expired (same id).
	for {
		old := c.brokers[owner]
		np := c.launchAt(owner, old.brokerPort, old.httpPort, []string{"--log-level", "warn"})
		if err := waitReady(np.webURL, np.exited); err == nil {
			c.brokers[owner] = np
			c.down[owner] = false
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return d
}

// scrape reads one counter from a broker's /metrics.
func scrape(t *testing.T, webURL, name string) float64 {
	resp, err := http.Get(webURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}
