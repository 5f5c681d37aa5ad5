package test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestLakeSinkThroughput is the lake sink end to end (opt-in,
// MB_LAKE_BENCH=1): a topic pre-filled with MB_LAKE_BENCH_ROWS JSON rows
// (default 1,000,000; the six fields of BenchmarkLakeRows), then the sink
// created through the admin API, timed until its status counts every row
// written (acknowledged after the PUT); the rows are then counted in the
// Parquet objects with DuckDB. Run with
//
//	MB_LAKE_BENCH=1 go test -run LakeSinkThroughput -v -timeout 20m ./test/
//
// MB_S3TEST_DIR=/dev/shm puts the gateway's directory on a tmpfs (a remote
// S3 has its own disks); MB_LAKE_BENCH_ROLL_BYTES sets rollSizeBytes
// (default 8 MiB) and MB_LAKE_BENCH_ROLL_MS rollIntervalMs (default 30000);
// MB_LAKE_BENCH_CPUPROFILE writes a CPU profile of this
// process (broker and sink) over the sink's run. MB_LAKE_BENCH_RATE > 0
// adds a second phase: a producer publishing that many rows/s for 20 s
// while the sink runs, reporting the backlog the sink leaves (a file's
// rows are written when it closes, so the backlog is at least a file's
// rows) and how long after the last publish the last file is stored
// (which includes the wait for rollIntervalMs).
func TestLakeSinkThroughput(t *testing.T) {
	if os.Getenv("MB_LAKE_BENCH") != "1" {
		t.Skip("opt-in benchmark: MB_LAKE_BENCH=1")
	}
	rows := lakeBenchEnv("MB_LAKE_BENCH_ROWS", 1_000_000)
	roll := lakeBenchEnv("MB_LAKE_BENCH_ROLL_BYTES", 8<<20)
	// Long enough that files close by size even on a loaded machine.
	rollMs := lakeBenchEnv("MB_LAKE_BENCH_ROLL_MS", 30000)
	g, s, c, topic := startLake(t)
	payload := func(i int) []byte {
		return fmt.Appendf(nil, `{"id":%d,"account":%d,"amount":%d.%02d,"currency":"EUR","note":"order %d","ok":%t}`,
			i, i%1000, i%977, i%100, i, i%3 == 0)
	}
	// The last file would wait for rollIntervalMs: the row count is cut
	// at the last size roll instead (the sink rolls once a file's
	// payloads reach rollSizeBytes), so every file closes by size.
	n, sum := 0, 0
	for i := 0; i < rows; i++ {
		sum += len(payload(i))
		if sum >= roll {
			n, sum = i+1, 0
		}
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 1000, BatchingMaxSize: 128 << 10,
		MaxPendingMessages: 20000, CompressionType: pulsar.NoCompression})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	props := map[string]string{"src": "bench"}
	var failed atomic.Int64
	start := time.Now()
	for i := range n {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: strconv.Itoa(i % 5000), Properties: props, Payload: payload(i)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
	}
	if err := p.FlushWithCtx(context.Background()); err != nil || failed.Load() > 0 {
		t.Fatalf("pre-fill: %v, %d failed", err, failed.Load())
	}
	t.Logf("pre-filled %d rows in %v (%.0f rows/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())

	written := func(name string) int64 {
		resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/" + name + "/0/status")
		if err != nil {
			return -1
		}
		var st struct{ NumWrittenToSink int64 }
		decodeResponse(resp, &st)
		return st.NumWrittenToSink
	}
	if path := os.Getenv("MB_LAKE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cfg := fmt.Sprintf(`{"archive":"builtin://lake","inputs":[%q],"configs":{"endpoint":%q,"pathStyle":true,"bucket":"lake","prefix":"bus",
		"accessKeyId":"env:MB_TEST_S3_KEY","secretAccessKey":"env:MB_TEST_S3_SECRET","rollSizeBytes":%d,"rollIntervalMs":%d}}`, topic, g.Endpoint, roll, rollMs)
	gw := childPID(t, g.Dir)
	cpu0, gw0, start := processCPU(), procCPU(gw), time.Now()
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/lake", cfg); code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	waitFor(t, "the sink to write every row", 10*time.Minute, func() bool { return written("lake") >= int64(n) })
	el, cpu, gwCPU := time.Since(start), time.Duration(processCPU()-cpu0), procCPU(gw)-gw0
	pprof.StopCPUProfile()

	local := filepath.Join(g.Dir, "lake", "bus", strings.TrimPrefix(topic, "persistent://"))
	var files, bytes int64
	filepath.Walk(local, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(path, ".parquet") {
			files++
			bytes += info.Size()
		}
		return nil
	})
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var count, distinct int64
	q := fmt.Sprintf(`select count(*), count(distinct __message_id) from read_parquet('%s/**/*.parquet')`, local)
	if err := db.QueryRow(q).Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count < int64(n) || distinct != int64(n) {
		t.Fatalf("%d rows, %d distinct message ids in the files; want %d", count, distinct, n)
	}
	t.Logf("lake sink: %d rows in %v: %.0f rows/s; %d files, %.1f Parquet B/row; CPU: process (broker, sink) %.2f cores, %.1f µs/row; gateway %.2f cores, %.1f µs/row; gateway dir %s",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), files, float64(bytes)/float64(count),
		cpu.Seconds()/el.Seconds(), float64(cpu.Microseconds())/float64(n), gwCPU.Seconds()/el.Seconds(), float64(gwCPU.Microseconds())/float64(n), g.Dir)

	rate := lakeBenchEnv("MB_LAKE_BENCH_RATE", 0)
	if rate == 0 {
		return
	}
	// Fixed-rate phase: the sink's backlog (published, not yet written)
	// sampled every 100 ms while a producer keeps to rate rows/s.
	const secs = 20
	base := written("lake")
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		due := time.Now()
		per := max(rate/100, 1)
		for i := 0; i < rate*secs; i += per {
			for k := i; k < i+per; k++ {
				p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: strconv.Itoa(k % 5000), Properties: props, Payload: payload(k)},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						if err == nil {
							sent.Add(1)
						}
					})
			}
			due = due.Add(time.Duration(per) * time.Second / time.Duration(rate))
			time.Sleep(time.Until(due))
		}
	}()
	var maxLag, sumLag, samples int64
	start = time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			lag := sent.Load() - (written("lake") - base)
			maxLag = max(maxLag, lag)
			sumLag += lag
			samples++
		}
	}
	pubEl := time.Since(start)
	p.FlushWithCtx(context.Background())
	total := sent.Load()
	waitFor(t, "the sink to catch up", 5*time.Minute, func() bool { return written("lake")-base >= total })
	got := float64(total) / pubEl.Seconds()
	mean := sumLag / max(samples, 1)
	t.Logf("fixed rate: %d rows published in %v (%.0f rows/s); backlog mean %d rows (%.2f s of publishing), max %d rows (%.2f s); drained %v after the last publish",
		total, pubEl.Round(time.Millisecond), got, mean, float64(mean)/got, maxLag, float64(maxLag)/got,
		(time.Since(start) - pubEl).Round(time.Millisecond))
}

func lakeBenchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// childPID is the pid of this process's child whose command line has arg
// (the gateway, by its directory).
func childPID(t *testing.T, arg string) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			cmd, _ := os.ReadFile("/proc/" + p + "/cmdline")
			if strings.Contains(string(cmd), arg) {
				pid, _ := strconv.Atoi(p)
				return pid
			}
		}
	}
	t.Fatalf("no child process with %s", arg)
	return 0
}

// procCPU is a process's user and system CPU time (Linux, 100 ticks/s).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command: utime and stime are the
	// 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}
