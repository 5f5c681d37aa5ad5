// Package etcdtest runs real etcd members (go.etcd.io/etcd/server/v3/embed,
// v3.7) on loopback for tests: in the test process, or each in a child
// process (the test binary run again) that a test can kill -9. Members get
// their own data dirs and free ports, and keep both across restarts.
//
// Members skip fsync (embed's UnsafeNoFsync): a killed process loses nothing
// that reached the page cache, and tests run several times faster. Never use
// this package outside tests.
package etcdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/messagebus/messagebus/internal/testutil/syncbuf"
)

// memberEnv names the variable that makes a test binary run one etcd member
// (see RunMemberIfChild).
const memberEnv = "ETCDTEST_MEMBER"

// startTimeout bounds the start of a member until it serves.
const startTimeout = 30 * time.Second

// memberConfig is what a member needs to start, in the test process or a child.
type memberConfig struct {
	Name           string
	Dir            string
	ClientURL      string
	PeerURL        string
	InitialCluster string
}

// Cluster is a set of etcd members on loopback.
type Cluster struct {
	processes bool
	members   []*member
}

type member struct {
	cfg memberConfig
	mu  sync.Mutex
	e   *embed.Etcd // in-process, while running
	cmd *exec.Cmd   // child process, while running
	out chan struct{}
}

// Start starts n members in the test process and stops them when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := startFresh(t.TempDir, n, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// StartProcesses starts n members, each in a child process running the test
// binary (whose TestMain must call RunMemberIfChild), and kills them when
// the test ends.
func StartProcesses(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := startFresh(t.TempDir, n, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts n members in this process with data dirs under dir (for
// TestMain; tests use Start). Close stops them.
func New(dir string, n int) (*Cluster, error) {
	attempt := 0
	return startFresh(func() string {
		attempt++
		if attempt == 1 {
			return dir
		}
		return fmt.Sprintf("%s-%d", dir, attempt)
	}, n, false)
}

// startFresh makes and starts a cluster of n members in a directory from
// dir, and again on other ports, in a new directory, when a member's port
// was taken meanwhile: a port found free can be taken before the member
// binds it (by another test's listener, or as the source port of a
// connection).
func startFresh(dir func() string, n int, processes bool) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c := newCluster(dir(), n, processes)
		err := c.startAll()
		if err == nil {
			return c, nil
		}
		c.Close()
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
}

func newCluster(dir string, n int, processes bool) *Cluster {
	c := &Cluster{processes: processes}
	var peers []string
	for i := range n {
		m := &member{cfg: memberConfig{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       filepath.Join(dir, fmt.Sprintf("m%d", i)),
			ClientURL: "http://" + freeAddr(),
			PeerURL:   "http://" + freeAddr(),
		}}
		peers = append(peers, m.cfg.Name+"="+m.cfg.PeerURL)
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		m.cfg.InitialCluster = strings.Join(peers, ",")
	}
	return c
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startAll starts every member at once: each waits for a quorum.
func (c *Cluster) startAll() error {
	errs := make(chan error, len(c.members))
	for i := range c.members {
		go func() { errs <- c.Restart(i) }()
	}
	var err error
	for range c.members {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Endpoints are the members' client addresses, host:port.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, strings.TrimPrefix(m.cfg.ClientURL, "http://"))
	}
	return eps
}

// URL is the cluster as mb's --metadata-store takes it: etcd://host:port,...
func (c *Cluster) URL() string { return "etcd://" + strings.Join(c.Endpoints(), ",") }

// Len is the number of members.
func (c *Cluster) Len() int { return len(c.members) }

// Stop stops member i: a child process is killed with SIGKILL; a member in
// this process is stopped without handing its leadership on.
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.out
		m.cmd = nil
	}
	if m.e != nil {
		m.e.Server.HardStop()
		m.e.Close()
		m.e = nil
	}
}

// Restart starts member i (again), on its data dir and ports, and returns
// once it serves.
func (c *Cluster) Restart(i int) error {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.processes {
		return m.startProcess()
	}
	e, err := startEmbedded(m.cfg)
	if err != nil {
		return err
	}
	m.e = e
	return nil
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}

// Leader returns the index of the current leader, waiting up to the
// context's end for one.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for {
		for i, m := range c.members {
			if id, leader, err := memberStatus(ctx, m.cfg.ClientURL); err == nil && id == leader {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no etcd leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond): // polling: etcd has no leader-change event for outsiders
		}
	}
}

func memberStatus(ctx context.Context, ep string) (id, leader uint64, err error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return 0, 0, err
	}
	return st.Header.MemberId, st.Leader, nil
}

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func embedConfig(mc memberConfig) (*embed.Config, error) {
	cu, err := url.Parse(mc.ClientURL)
	if err != nil {
		return nil, err
	}
	pu, err := url.Parse(mc.PeerURL)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = mc.Name
	cfg.Dir = mc.Dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = mc.InitialCluster
	cfg.InitialClusterToken = "etcdtest"
	cfg.LogLevel = "fatal" // its errors while members stop are expected here
	cfg.UnsafeNoFsync = true
	return cfg, nil
}

func startEmbedded(mc memberConfig) (*embed.Etcd, error) {
	cfg, err := embedConfig(mc)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: %w", mc.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd member %s: %w", mc.Name, err)
	case <-time.After(startTimeout):
		e.Server.HardStop()
		e.Close()
		return nil, fmt.Errorf("etcd member %s not ready in %s", mc.Name, startTimeout)
	}
}

// startProcess runs the member in a child process and waits for its
// "ready" line.
func (m *member) startProcess() error {
	b, err := json.Marshal(m.cfg)
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberEnv+"="+string(b))
	var stderr syncbuf.Buffer // for the error: a port taken meanwhile is retried
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	out := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if sc.Text() == "etcdtest: ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		cmd.Wait()
		close(out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-out
			return fmt.Errorf("etcd member %s exited before it was ready (does TestMain call etcdtest.RunMemberIfChild?): %s", m.cfg.Name, tail(stderr.String(), 2000))
		}
	case <-time.After(startTimeout):
		cmd.Process.Signal(syscall.SIGKILL)
		<-out
		return fmt.Errorf("etcd member %s not ready in %s", m.cfg.Name, startTimeout)
	}
	m.cmd, m.out = cmd, out
	return nil
}

// tail returns the last n bytes of s at most.
func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// RunMemberIfChild runs an etcd member and never returns when this process
// was started as one by StartProcesses; otherwise it returns at once. Call
// it first in TestMain.
func RunMemberIfChild() {
	v := os.Getenv(memberEnv)
	if v == "" {
		return
	}
	var mc memberConfig
	if err := json.Unmarshal([]byte(v), &mc); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(2)
	}
	e, err := startEmbedded(mc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(2)
	}
	fmt.Println("etcdtest: ready")
	err = <-e.Err()
	fmt.Fprintln(os.Stderr, "etcdtest: member", mc.Name, "failed:", err)
	os.Exit(2)
}
