// Package s3test runs the Versity S3 gateway (a real S3 server over a
// directory) for tests. The binary is installed by `make testdeps`; when it
// is missing the test fails with the install command.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/objstore"
)

// Version is the gateway version the tests are written against.
const Version = "v1.8.0"

// Credentials of the gateway's root user.
const (
	AccessKey = "mbtestaccess"
	SecretKey = "mbtestsecret0123456789"
)

// Gateway is a running gateway.
type Gateway struct {
	Endpoint string // http://127.0.0.1:port
	Dir      string // its posix backing directory

	bin, addr string
	idle      bool
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	out       *strings.Builder
}

// Binary finds the gateway: $VERSITYGW, else versitygw in $GOPATH/bin, else
// on PATH.
func Binary() (string, error) {
	install := fmt.Errorf("the Versity S3 gateway is not installed: run `make testdeps` or `go install github.com/versity/versitygw/cmd/versitygw@%s`", Version)
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VERSITYGW=%s: %w; %w", p, err, install)
		}
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", install
}

// Option changes how Start runs the gateway.
type Option func(*Gateway)

// Idle runs the gateway at the lowest CPU priority (nice 19, SCHED_IDLE,
// through chrt and nice, so that every thread of it has them): for a
// benchmark of the broker, where an S3 store's CPU is another machine's.
// On this machine's 2 cores the gateway's CPU for a 64 MiB PUT otherwise
// competes with the broker's publish path, which a remote store does not.
func Idle() Option { return func(g *Gateway) { g.idle = true } }

// Start runs a gateway on a loopback port over a temporary directory (the
// test's temp dir, or one under $MB_S3TEST_DIR: its posix backend needs
// xattrs, which ext4 has) until the test ends. The credentials are set in the environment (AWS_*) so that
// the SDK's default chain finds them.
func Start(t testing.TB, opts ...Option) *Gateway {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if base := os.Getenv("MB_S3TEST_DIR"); base != "" {
		// Elsewhere than the test's files, e.g. another disk or a tmpfs
		// with xattrs, for benchmarks that must not share a disk.
		if dir, err = os.MkdirTemp(base, "versitygw-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := &Gateway{Endpoint: "http://" + addr, Dir: dir, bin: bin, addr: addr}
	for _, o := range opts {
		o(g)
	}
	t.Cleanup(g.Kill)
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	return g
}

// start runs the gateway on g's address and directory and waits until it listens.
func (g *Gateway) start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	args := []string{g.bin, "--access", AccessKey, "--secret", SecretKey, "--port", g.addr, "posix", g.Dir}
	if g.idle {
		// Each execs the next: the gateway keeps the process (and its pid).
		args = append([]string{"chrt", "--idle", "0", "nice", "-n", "19"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	g.cmd, g.exited, g.out = cmd, exited, out
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not listening on %s after 20 s: %s", g.addr, out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling: a listening port has no event
	}
}

// Kill stops the gateway with SIGKILL (requests in flight fail); Restart
// brings it back.
func (g *Gateway) Kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		g.cmd.Process.Kill()
		<-g.exited
		g.cmd = nil
	}
}

// Pid is the running gateway's process id (0 when killed).
func (g *Gateway) Pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// Restart starts a killed gateway again on the same address and directory
// (its objects are all still there).
func (g *Gateway) Restart() error { return g.start() }

// Bucket makes an S3 store on a new bucket of g.
func (g *Gateway) Bucket(t testing.TB, name string, m *objstore.Metrics) *objstore.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := objstore.NewS3(ctx, objstore.S3Options{Bucket: name, Endpoint: g.Endpoint, PathStyle: true, Metrics: m,
		MaxAttempts: 3, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
