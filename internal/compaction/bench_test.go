package compaction

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// BenchmarkCompactLocal compacts a topic of MB_COMPACTION_BENCH_MESSAGES
// messages (default 1M) over MB_COMPACTION_BENCH_KEYS keys (default 100k),
// in LZ4 batches of 100 messages of 100 bytes, stored in the durable local
// ledger, and reports the time, the peak RSS of the compaction alone and the
// compacted size. Run with -benchtime 1x (docs/benchmarks.md, "Compaction").
func BenchmarkCompactLocal(b *testing.B) {
	messages, keys := envInt(b, "MB_COMPACTION_BENCH_MESSAGES", 1_000_000), envInt(b, "MB_COMPACTION_BENCH_KEYS", 100_000)
	dir := b.TempDir()
	s, err := local.Open(local.Options{Dir: dir, CacheBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	topic, err := s.Open(context.Background(), "persistent://bench/ns/table")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const perBatch = 100
	batchMsgs := make([]msg, perBatch)
	var topicBytes int64
	pending := make(chan error, 1024)
	inflight := 0
	for i := 0; i < messages; i += perBatch {
		for j := range batchMsgs {
			// 100-byte values that compress about as much as JSON does.
			batchMsgs[j] = msg{key: "key-" + strconv.Itoa((i+j)*7919%keys), value: fmt.Sprintf("{\"seq\":%020d,\"v\":\"%070x\"}", i+j, uint64(i+j)*2654435761)}
		}
		data := batch(b, pb.CompressionType_LZ4, batchMsgs...)
		topicBytes += int64(len(data))
		if inflight == cap(pending) {
			if err := <-pending; err != nil {
				b.Fatal(err)
			}
			inflight--
		}
		inflight++
		topic.Append(data, func(_ int64, err error) { pending <- err })
	}
	for ; inflight > 0; inflight-- {
		if err := <-pending; err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("wrote %d messages (%d entries, %d MiB) over %d keys in %v", messages, topic.LastEntryID()+1, topicBytes>>20, keys, time.Since(start))
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS(b)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		out, err := s.Open(context.Background(), fmt.Sprintf("__compacted/bench/%d", n))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		res, err := Compact(context.Background(), Input{Topic: topic, PreviousHorizon: -1, Horizon: topic.LastEntryID()}, out)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/compaction")
		b.ReportMetric(float64(res.Bytes)/(1<<20), "MiB-compacted")
		b.ReportMetric(float64(res.Kept), "kept")
		b.ReportMetric(float64(peakRSS(b))/(1<<20), "MiB-peak-RSS")
	}
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

// resetPeakRSS clears the kernel's VmHWM of this process (Linux).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset: %v", err)
	}
}

// peakRSS reads VmHWM (bytes) from /proc/self/status; 0 when unknown.
func peakRSS(b *testing.B) int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
