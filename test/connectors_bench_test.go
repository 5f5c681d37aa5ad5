package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/messagebus/messagebus/internal/testutil/pgtest"
	"github.com/messagebus/messagebus/server"
)

// BenchmarkPostgresCDC measures the postgres source: rows/s captured from
// a pgbench-style write load (8 writers, each transaction 10 single-row
// inserts sent as one pipelined batch, so that a transaction costs one
// round trip) with the capture keeping up, the capture's ceiling with
// large transactions (INSERT ... SELECT of 5,000 rows), then the
// commit-to-receipt lag (envelope source.ts_ms to the consumer's receive)
// p50/p99 at half the small-transaction rate and at a fixed rate
// (MB_CDC_BENCH_RATE rows/s, default 20,000: the target). Run with
//
//	go test -run XXX -bench PostgresCDC -benchtime 1x ./test/
//
// MB_CDC_BENCH_WRITERS and MB_CDC_BENCH_ROWS_PER_TX change the load;
// MB_CDC_BENCH_SYNC_COMMIT=off sets synchronous_commit=off for the writers
// (Postgres runs with fsync=off either way).
func BenchmarkPostgresCDC(b *testing.B) {
	writers, perTx := cdcEnv("MB_CDC_BENCH_WRITERS", 8), cdcEnv("MB_CDC_BENCH_ROWS_PER_TX", 10)
	fixedRate := cdcEnv("MB_CDC_BENCH_RATE", 20000)
	pg := pgtest.Start(b)
	ctx := context.Background()
	pcfg, err := pgxpool.ParseConfig(pg.DSN("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	pcfg.MaxConns = int32(writers + 2)
	if v := os.Getenv("MB_CDC_BENCH_SYNC_COMMIT"); v != "" {
		pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE load (id bigint PRIMARY KEY, account int, amount int, note text)`); err != nil {
		b.Fatal(err)
	}
	s, err := server.New(server.Options{DataDir: b.TempDir(), BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdvertisedAddress: "127.0.0.1", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	defer s.Shutdown(context.Background())
	cfg := fmt.Sprintf(`{"archive":"builtin://postgres","configs":{"connectionString":%q,"tables":["public.load"]}}`, pg.DSN("postgres"))
	req, _ := http.NewRequest(http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/bench", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		b.Fatalf("create: %v %v", err, resp)
	}
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), Logger: nopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "persistent://public/default/postgres.public.load", SubscriptionName: "bench",
		ReceiverQueueSize: 10000, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	next := int64(0)
	// write inserts rows from writers in transactions of perTx rows; with
	// rate > 0 each writer keeps to its share of it on a fixed schedule.
	write := func(rows int, rate float64) {
		var wg sync.WaitGroup
		per := rows / writers
		for w := range writers {
			wg.Add(1)
			go func(base int64) {
				defer wg.Done()
				var every time.Duration
				if rate > 0 {
					every = time.Duration(float64(time.Second) * float64(writers*perTx) / rate)
				}
				due := time.Now()
				for i := 0; i < per; i += perTx {
					batch := &pgx.Batch{}
					for k := 0; k < perTx && i+k < per; k++ {
						id := base + int64(i+k)
						batch.Queue(`INSERT INTO load VALUES ($1, $2, $3, 'benchmark row')`, id, id%1000, id%97)
					}
					// One implicit transaction, one round trip.
					if err := pool.SendBatch(ctx, batch).Close(); err != nil {
						b.Error(err)
						return
					}
					if every > 0 {
						due = due.Add(every)
						time.Sleep(time.Until(due))
					}
				}
			}(next + int64(w)*int64(per))
		}
		wg.Wait()
		next += int64(rows)
	}
	receive := func(n int, lags *[]time.Duration) {
		for got := 0; got < n; got++ {
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				b.Fatalf("after %d of %d: %v", got, n, err)
			}
			if lags != nil {
				*lags = append(*lags, time.Since(time.UnixMilli(envelopeCommitMs(b, m.Payload()))))
			}
			if got%1000 == 999 || got == n-1 {
				cons.AckCumulative(m)
			}
		}
	}
	// lagAt writes for 5 s at rate and reports the lag percentiles.
	lagAt := func(rate float64, name string) {
		rows := int(rate * 5)
		rows -= rows % (writers * perTx)
		var lags []time.Duration
		done := make(chan struct{})
		start := time.Now()
		go func() { receive(rows, &lags); close(done) }()
		write(rows, rate)
		wrote := time.Since(start)
		<-done
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		b.ReportMetric(float64(rows)/wrote.Seconds(), name+"-written-rows/s")
		b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), name+"-lag-p50-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), name+"-lag-p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), name+"-lag-max-ms")
	}
	// cpuPerRow reports the CPU time per row of this process (writers,
	// broker, capture, consumer) and of Postgres's backends (the writes)
	// and walsender (logical decoding) since the last call: on a shared
	// machine the CPU per row says more than rows/s do.
	var cpuMark map[string]time.Duration
	mark := func() {
		m, err := pg.CPU()
		if err != nil {
			b.Fatal(err)
		}
		m["process"] = time.Duration(processCPU())
		cpuMark = m
	}
	cpuPerRow := func(rows int, name string) {
		old := cpuMark
		mark()
		total := time.Duration(0)
		for _, k := range []string{"process", "backend", "walsender", "other"} {
			d := cpuMark[k] - old[k]
			total += d
			b.ReportMetric(float64(d.Microseconds())/float64(rows), name+k+"-cpu-us/row")
		}
		b.ReportMetric(float64(total.Microseconds())/float64(rows), name+"total-cpu-us/row")
	}
	// One row through before measuring: the connector is streaming (rows
	// written before its slot exists would come by the snapshot).
	write(writers*perTx, 0)
	receive(writers*perTx, nil)
	for i := 0; i < b.N; i++ {
		const rows = 160_000
		mark()
		cpu0 := processCPU()
		start := time.Now()
		done := make(chan struct{})
		go func() { receive(rows, nil); close(done) }()
		write(rows, 0)
		wrote := time.Since(start)
		<-done
		el := time.Since(start)
		rate := float64(rows) / el.Seconds()
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(float64(rows)/wrote.Seconds(), "written-rows/s")
		b.ReportMetric(float64(processCPU()-cpu0)/float64(el.Nanoseconds()), "process-cores")
		cpuPerRow(rows, "")
		// Capture capacity: large transactions (5,000 rows each, written
		// by INSERT ... SELECT) so that Postgres writes faster than the
		// small-transaction load can.
		const bulk = 200_000
		start = time.Now()
		done = make(chan struct{})
		go func() { receive(bulk, nil); close(done) }()
		for k := int64(0); k < bulk; k += 5000 {
			if _, err := pool.Exec(ctx, `INSERT INTO load SELECT g, g % 1000, g % 97, 'benchmark row' FROM generate_series($1::bigint, $2::bigint) g`,
				next+k, next+k+4999); err != nil {
				b.Fatal(err)
			}
		}
		bulkWrote := time.Since(start)
		next += bulk
		<-done
		b.ReportMetric(float64(bulk)/time.Since(start).Seconds(), "bulk-rows/s")
		b.ReportMetric(float64(bulk)/bulkWrote.Seconds(), "bulk-written-rows/s")
		cpuPerRow(bulk, "bulk-")
		lagAt(rate/2, "half")
		b.ReportMetric(rate/2, "half-rows/s")
		// The fixed rate even above the measured maximum: its written
		// rate and lag say how far from keeping up the machine is.
		lagAt(float64(fixedRate), "fixed")
		b.ReportMetric(float64(fixedRate), "fixed-rows/s")
	}
}

// cdcEnv is the positive integer in the environment variable, or def.
func cdcEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// envelopeCommitMs is the envelope's source.ts_ms (the commit time),
// found without decoding the whole JSON so that the consumer stays cheap.
func envelopeCommitMs(b *testing.B, payload []byte) int64 {
	_, rest, ok := bytes.Cut(payload, []byte(`"source":{`))
	if ok {
		_, rest, ok = bytes.Cut(rest, []byte(`"ts_ms":`))
	}
	end := bytes.IndexByte(rest, ',')
	if !ok || end < 0 {
		b.Fatalf("no source.ts_ms in %s", payload)
	}
	ms, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil {
		b.Fatalf("source.ts_ms: %v", err)
	}
	return ms
}
