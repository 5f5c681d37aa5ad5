package cluster_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/cluster"
)

// TestWALPipelineLatency (MB_WAL_PIPELINE_BENCH=1) measures append latency
// at a fixed rate over the Versity gateway with an added PUT latency that
// stands for a remote S3 (S3 Standard: tens of ms per PUT), with one WAL
// object in flight and with several. docs/benchmarks.md has the numbers.
func TestWALPipelineLatency(t *testing.T) {
	if os.Getenv("MB_WAL_PIPELINE_BENCH") == "" {
		t.Skip("set MB_WAL_PIPELINE_BENCH=1 to run the WAL pipeline benchmark")
	}
	e := newEnv(t)
	for _, putDelay := range []time.Duration{0, 20 * time.Millisecond} {
		for _, inflight := range []int{1, 4} {
			p := e.prefix()
			objs := &slowPuts{Store: e.objects, delay: putDelay}
			s := e.open(t, p, "bench", objs, func(o *cluster.Options) {
				o.WALMaxInflight, o.WALMaxDelay = inflight, 5*time.Millisecond
				o.RewriteInterval, o.GCInterval = -1, -1
			})
			const topics, rate, d = 6, 3000, 5 * time.Second // appends/s in total
			ls := make([]ledger.Ledger, topics)
			for i := range ls {
				l, err := s.Open(context.Background(), fmt.Sprintf("t%d", i))
				if err != nil {
					t.Fatal(err)
				}
				ls[i] = l
			}
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			payload := make([]byte, 128)
			start := time.Now()
			for n := 0; time.Since(start) < d; n++ {
				if ahead := time.Duration(float64(n)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
				at := time.Now()
				wg.Add(1)
				ls[n%topics].Append(payload, func(_ int64, err error) {
					defer wg.Done()
					if err == nil {
						mu.Lock()
						lat = append(lat, time.Since(at))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			s.Close()
			slices.Sort(lat)
			t.Logf("PUT +%v, --wal-max-inflight %d, %d appends/s offered: %d acknowledged, p50 %v p99 %v, up to %d PUTs at once",
				putDelay, inflight, rate, len(lat), lat[len(lat)/2].Round(100*time.Microsecond),
				lat[len(lat)*99/100].Round(100*time.Microsecond), objs.max.Load())
		}
	}
}
