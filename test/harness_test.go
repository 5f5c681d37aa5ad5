package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/testutil/syncbuf"
	"github.com/messagebus/messagebus/server"
)

var raceEnabled bool

// mbBinary is the mb binary built once for the tests that run it as a child process.
var mbBinary string

// metadataStore is the etcd://... URL the brokers of the tests keep their
// metadata in when MB_TEST_METADATA_STORE=etcd, else "" (the embedded store).
var metadataStore string

// functionClientPath (MB_TEST_FUNCTION_INPROCESS=0) runs every function
// instance on the client (loopback) path instead of in process.
var functionClientPath = os.Getenv("MB_TEST_FUNCTION_INPROCESS") == "0"

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild()
	dir, err := os.MkdirTemp("", "mb-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mbBinary = filepath.Join(dir, "mb")
	args := []string{"build", "-o", mbBinary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/mb")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mb:", err)
		os.Exit(1)
	}
	var etcdCluster *etcdtest.Cluster
	switch store := os.Getenv("MB_TEST_METADATA_STORE"); store {
	case "", "embedded":
	case "etcd":
		// One etcd member in this process serves every broker; each data
		// dir gets its own key prefix (metadataArgs).
		etcdCluster, err = etcdtest.New(filepath.Join(dir, "etcd"), 1)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start etcd:", err)
			os.Exit(1)
		}
		metadataStore = etcdCluster.URL()
		fmt.Fprintln(os.Stderr, "metadata store of the brokers under test:", metadataStore)
	default:
		fmt.Fprintf(os.Stderr, "MB_TEST_METADATA_STORE=%q: want embedded or etcd\n", store)
		os.Exit(2)
	}
	code := m.Run()
	if etcdCluster != nil {
		etcdCluster.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// metadataPrefix is the etcd key prefix of the broker on dataDir: the same
// for every start on it, as the embedded store in it would be.
func metadataPrefix(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return "/mbtest/" + hex.EncodeToString(sum[:8])
}

// metadataArgs are the mb flags that put the metadata of the broker on
// dataDir where MB_TEST_METADATA_STORE says.
func metadataArgs(dataDir string) []string {
	if metadataStore == "" {
		return nil
	}
	return []string{"--metadata-store", metadataStore, "--metadata-prefix", metadataPrefix(dataDir)}
}

// skipOnEtcd skips tests of the embedded metadata store itself.
func skipOnEtcd(t *testing.T) {
	t.Helper()
	if metadataStore != "" {
		t.Skip("tests the embedded metadata store; MB_TEST_METADATA_STORE=etcd")
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startServer runs a broker in-process on loopback with fresh storage.
func startServer(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.BrokerAddr = "127.0.0.1:0"
	opts.HTTPAddr = "127.0.0.1:0"
	opts.AdvertisedAddress = "127.0.0.1"
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if functionClientPath {
		opts.Functions.InProcessDisabled = true
	}
	if metadataStore != "" && opts.Metadata.Store == "" {
		opts.Metadata.Store, opts.Metadata.Prefix = metadataStore, metadataPrefix(opts.DataDir)
	}
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func newClient(t *testing.T, url string) pulsar.Client {
	t.Helper()
	return clientWith(t, pulsar.ClientOptions{URL: url, OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second})
}

// proc is an mb standalone child process.
type proc struct {
	cmd        *exec.Cmd
	brokerURL  string
	webURL     string
	dataDir    string
	exited     chan struct{}
	stderr     *syncBuffer
	brokerPort int
	httpPort   int
}

type syncBuffer = syncbuf.Buffer

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProc runs `mb standalone` on dataDir and waits until it is healthy.
// Ports are kept across restarts of the same data dir when given; ports it
// picks itself are picked again when another socket took one in between
// (freePort can only say a port was free a moment ago).
func startProc(t *testing.T, dataDir string, brokerPort, httpPort int, extraArgs ...string) *proc {
	t.Helper()
	pick := brokerPort == 0 || httpPort == 0
	for attempt := 1; ; attempt++ {
		bp, hp := brokerPort, httpPort
		if bp == 0 {
			bp = freePort(t)
		}
		if hp == 0 {
			hp = freePort(t)
		}
		p := launchProc(t, dataDir, bp, hp, extraArgs)
		err := waitReady(p.webURL, p.exited)
		if err == nil {
			return p
		}
		if pick && attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("%v\nmb stderr:\n%s", err, p.stderr.String())
	}
}

func launchProc(t *testing.T, dataDir string, brokerPort, httpPort int, extraArgs []string) *proc {
	t.Helper()
	p := &proc{
		dataDir:    dataDir,
		brokerPort: brokerPort,
		httpPort:   httpPort,
		brokerURL:  fmt.Sprintf("pulsar://127.0.0.1:%d", brokerPort),
		webURL:     fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		exited:     make(chan struct{}),
		stderr:     &syncBuffer{},
	}
	args := append([]string{"standalone",
		"--data-dir", dataDir,
		"--broker-addr", fmt.Sprintf("127.0.0.1:%d", brokerPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--advertised-address", "127.0.0.1",
		"--log-level", "warn",
		// Background work (compactions, offloads) at nice 1 and without
		// SCHED_IDLE, not the defaults (19, SCHED_IDLE): CI runs test
		// packages in parallel on 2 cores, where work at the lowest
		// priority gets little CPU by design and tests waiting for a
		// compaction would time out. The same code path runs; the default
		// is measured by the rounds benchmarks (background_bench_test.go).
		"--background-nice", "1", "--background-sched-idle=false",
	}, append(metadataArgs(dataDir), extraArgs...)...)
	if functionClientPath {
		args = append(args, "--function-inprocess=false")
	}
	p.cmd = exec.Command(mbBinary, args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("mb stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// waitHealthy polls the health endpoint until it answers ok.
func waitHealthy(t *testing.T, webURL string, exited <-chan struct{}) {
	t.Helper()
	if err := waitReady(webURL, exited); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls the health endpoint: readiness is an external event we
// can only observe by asking.
func waitReady(webURL string, exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("mb exited before becoming healthy")
		default:
		}
		resp, err := http.Get(webURL + "/admin/v2/brokers/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && (string(body) == "ok" || strings.HasPrefix(string(body), "degraded: ")) { // degraded (disk full) still serves
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("mb did not become healthy")
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// terminate sends SIGTERM and returns the exit code and how long the exit took.
func (p *proc) terminate(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("mb did not exit within 20s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

func uniqueTopic(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("persistent://public/default/%s-%d", name, time.Now().UnixNano())
}

func receiveN(t *testing.T, c pulsar.Consumer, n int, timeout time.Duration) []pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// expectNoMessage asserts nothing arrives within d. Absence can only be
// observed by waiting; d is kept short.
func expectNoMessage(t *testing.T, c pulsar.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := c.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q (id %v)", m.Payload(), m.ID())
	}
}

func nopLogger() plog.Logger { return plog.DefaultNopLogger() }
