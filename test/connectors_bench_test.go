package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/messagebus/messagebus/internal/testutil/pgtest"
	"github.com/messagebus/messagebus/server"
)

// BenchmarkPostgresCDC measures the postgres source: rows/s captured from
// a write load of small transactions (8 writers, 10 single-row inserts per
// transaction) with the capture keeping up, then the commit-to-receipt lag
// (envelope source.ts_ms to the consumer's receive) p50/p99 at half that
// rate. Run with
//
//	go test -run XXX -bench PostgresCDC -benchtime 1x ./test/
func BenchmarkPostgresCDC(b *testing.B) {
	pg := pgtest.Start(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN("postgres"))
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
	// write inserts rows with the given pause between transactions per writer.
	write := func(rows int, pause time.Duration) {
		var wg sync.WaitGroup
		per := rows / 8
		for w := range 8 {
			wg.Add(1)
			go func(base int64) {
				defer wg.Done()
				for i := 0; i < per; i += 10 {
					tx, err := pool.Begin(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					for k := 0; k < 10; k++ {
						id := base + int64(i+k)
						tx.Exec(ctx, `INSERT INTO load VALUES ($1, $2, $3, 'benchmark row')`, id, id%1000, id%97)
					}
					if err := tx.Commit(ctx); err != nil {
						b.Error(err)
						return
					}
					if pause > 0 {
						time.Sleep(pause)
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
				var e struct {
					Source struct {
						TsMs int64 `json:"ts_ms"`
					} `json:"source"`
				}
				json.Unmarshal(m.Payload(), &e)
				*lags = append(*lags, time.Since(time.UnixMilli(e.Source.TsMs)))
			}
			cons.Ack(m)
		}
	}
	for i := 0; i < b.N; i++ {
		const rows = 80_000
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
		// Capture capacity: large transactions (5,000 rows each, written
		// by INSERT ... SELECT) so that Postgres writes faster than the
		// small-transaction load can.
		const bulk = 100_000
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
		// Lag at half the rate: each writer sleeps to pace its transactions.
		half := rate / 2
		pause := time.Duration(float64(time.Second) * 8 * 10 / half)
		lagRows := int(half * 5)
		lagRows -= lagRows % 80
		var lags []time.Duration
		done = make(chan struct{})
		go func() { receive(lagRows, &lags); close(done) }()
		write(lagRows, pause)
		<-done
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "lag-p50-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "lag-p99-ms")
		b.ReportMetric(half, "lag-at-rows/s")
	}
}
