package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/server"
)

// BenchmarkFunctionIdentityThroughput measures messages per second through
// the identity example: a backlog of 128-byte messages on a durable input
// topic, consumed by the function (ATLEAST_ONCE, parallelism from
// MB_BENCH_PARALLELISM, default 1), published to a durable output topic,
// and read there. Run with
//
//	go test -run XXX -bench FunctionIdentityThroughput -benchtime 1x ./test/
//
// Besides msg/s it reports the process's CPU time per message while the
// function runs, from its first output (cpu-ns/msg: broker, function instance and the reading
// consumer together), which depends far less on the machine's load.
// MB_BENCH_CPUPROFILE=file writes a CPU profile of that phase only,
// MB_BENCH_MEMPROFILE=file its allocations (see startPhaseProfile).
func BenchmarkFunctionIdentityThroughput(b *testing.B) {
	const n = 200_000
	opts := server.Options{DataDir: b.TempDir(), BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdvertisedAddress: "127.0.0.1", Logger: quietLogger()}
	// MB_BENCH_FUNCTION_INPROCESS=0 measures the client (loopback) path.
	opts.Functions.InProcessDisabled = os.Getenv("MB_BENCH_FUNCTION_INPROCESS") == "0"
	if v := os.Getenv("MB_BENCH_FUNCTION_BATCH"); v != "" {
		if _, err := fmt.Sscan(v, &opts.Functions.BatchSize); err != nil {
			b.Fatal("MB_BENCH_FUNCTION_BATCH: ", err)
		}
	}
	s, err := server.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	defer s.Shutdown(context.Background())
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), Logger: nopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	adm, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: s.WebURL()})
	if err != nil {
		b.Fatal(err)
	}
	module := filepath.Join(b.TempDir(), "identity.wasm")
	if err := os.WriteFile(module, wasmbuild.Build(b, "../examples/functions/identity"), 0o644); err != nil {
		b.Fatal(err)
	}
	parallelism := 1
	if v := os.Getenv("MB_BENCH_PARALLELISM"); v != "" {
		parallelism = int(v[0] - '0')
	}
	payload := make([]byte, 128)
	for i := 0; i < b.N; i++ {
		in := "persistent://public/default/bench-in-" + time.Now().Format("150405.000000")
		out := in + "-out"
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: in, MaxPendingMessages: 10000, BatchingMaxPublishDelay: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		errc := make(chan error, 1)
		for j := 0; j < n; j++ {
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			})
		}
		if err := p.FlushWithCtx(context.Background()); err != nil {
			b.Fatal(err)
		}
		p.Close()
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: out, SubscriptionName: "bench", ReceiverQueueSize: 10000,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			b.Fatal(err)
		}
		cfg := &utils.FunctionConfig{Tenant: "public", Namespace: "default", Name: "identity" + time.Now().Format("150405"),
			Inputs: []string{in}, Output: out, Parallelism: parallelism, SubscriptionPosition: "Earliest"}
		b.ResetTimer()
		start := time.Now()
		if err := adm.Functions().CreateFunc(cfg, module); err != nil {
			b.Fatal(err)
		}
		var first time.Time
		var cpu0 int64
		stopProfile := func() {}
		for j := 0; j < n; j++ {
			m, err := cons.Receive(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if j == 0 {
				// The steady state: from the first output on.
				first = time.Now()
				cpu0 = processCPU()
				stopProfile = startPhaseProfile(b)
			}
			cons.AckID(m.ID())
		}
		d := time.Since(first)
		cpu := processCPU() - cpu0
		stopProfile()
		b.StopTimer()
		b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/msg")
		b.ReportMetric(float64(n-1)/d.Seconds(), "msg/s")
		b.ReportMetric(first.Sub(start).Seconds(), "s-to-first-output")
		cons.Close()
		adm.Functions().DeleteFunction("public", "default", cfg.Name)
	}
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// startPhaseProfile starts a CPU profile into $MB_BENCH_CPUPROFILE and
// writes the heap profile to $MB_BENCH_MEMPROFILE.base, if they are set,
// and returns their stop, which writes the heap profile again to
// $MB_BENCH_MEMPROFILE (compare the two with pprof -base for the phase's
// allocations).
func startPhaseProfile(b *testing.B) func() {
	var stops []func()
	if path := os.Getenv("MB_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	if path := os.Getenv("MB_BENCH_MEMPROFILE"); path != "" {
		writeHeap(b, path+".base")
		stops = append(stops, func() { writeHeap(b, path) })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

func writeHeap(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
