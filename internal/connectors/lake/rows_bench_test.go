package lake

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/parquet-go/parquet-go"
)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLakeRows is the lake sink's own work per message, S3 and the
// broker left out: a JSON payload decoded into a row, then a file of
// 10,000 rows encoded as zstd Parquet. It reports rows/s and Parquet
// bytes per row.
func BenchmarkLakeRows(b *testing.B) {
	const perFile = 10_000
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	payloads := make([][]byte, perFile)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, `{"id":%d,"account":%d,"amount":%d.%02d,"currency":"EUR","note":"order %d","ok":%t}`,
			i, i%1000, i%977, i%100, i, i%3 == 0)
	}
	props := map[string]string{"src": "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var files, bytes int
	for n := 0; n < b.N; n += perFile {
		rows := make([]row, 0, perFile)
		for i := 0; i < perFile && n+i < b.N; i++ {
			rows = append(rows, newAppendRow("persistent://public/default/orders", fmt.Sprint(i%5000), fmt.Sprintf("7:%d:-1:0", n+i),
				at.Add(time.Duration(i)*time.Millisecond), props, payloads[i]))
		}
		data, err := encode(rows, nil, &parquet.Zstd)
		if err != nil {
			b.Fatal(err)
		}
		files++
		bytes += len(data)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
	// The machine is shared: rows per second of this process's CPU time
	// does not depend on how much of a core it was given.
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(bytes)/float64(b.N), "parquet-B/row")
}

// BenchmarkLakeRowsAvro is BenchmarkLakeRows for messages with an AVRO
// schema in the registry: the same six fields as Avro binary, decoded with
// the schema into typed columns.
func BenchmarkLakeRowsAvro(b *testing.B) {
	const perFile = 10_000
	def := `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"account","type":"int"},
		{"name":"amount","type":"double"},{"name":"currency","type":"string"},{"name":"note","type":["null","string"]},{"name":"ok","type":"boolean"}]}`
	vs, err := newValueSchema("t@00", connectors.TopicSchema{Type: "AVRO", Definition: []byte(def)})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	payloads := make([][]byte, perFile)
	for i := range payloads {
		payloads[i], err = avro.Marshal(vs.record, map[string]any{"id": int64(i), "account": i % 1000, "amount": float64(i%977) + float64(i%100)/100,
			"currency": "EUR", "note": fmt.Sprintf("order %d", i), "ok": i%3 == 0})
		if err != nil {
			b.Fatal(err)
		}
	}
	props := map[string]string{"src": "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var bytes int
	for n := 0; n < b.N; n += perFile {
		rows := make([]row, 0, perFile)
		for i := 0; i < perFile && n+i < b.N; i++ {
			vals, err := vs.values(payloads[i])
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, row{topic: "persistent://public/default/orders", key: fmt.Sprint(i % 5000), messageID: fmt.Sprintf("7:%d:-1:0", n+i),
				publish: at.Add(time.Duration(i) * time.Millisecond), properties: props, typed: vals})
		}
		data, err := encode(rows, vs, &parquet.Zstd)
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(data)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(bytes)/float64(b.N), "parquet-B/row")
}
