package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// Faults of the components around the brokers, applied by runSchedule
// (cluster_test.go) while deduplicating producers send to a busy topic.
const (
	faultEtcdLeader fault = "kill-9-etcd-leader" // the etcd leader process dies; restarted once the brokers went on
	faultS3Restart  fault = "restart-s3"         // the S3 gateway is killed and started again 2 s later
	faultRolling    fault = "rolling-restart"    // SIGTERM each broker in turn, restarted on its ports
	faultPartition  fault = "partition"          // the owner is cut from etcd and S3 (not from clients), then healed
)

// s3Downtime is how long the gateway stays down: less than the brokers'
// 30 s of retries, more than a few of them.
const s3Downtime = 2 * time.Second

// applyFault applies the faults runSchedule does not handle itself; it
// returns once the fault is over (the component is back).
func (c *testCluster) applyFault(f fault, owner int, acked func() int) {
	t := c.t
	t.Helper()
	// waitMore waits until n more sends are acknowledged: the cluster went on.
	waitMore := func(n int, why string) {
		want := acked() + n
		deadline := time.Now().Add(60 * time.Second)
		for acked() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d messages acknowledged after 60 s, want %d", why, acked(), want)
			}
			time.Sleep(50 * time.Millisecond) // polling the history: receipts come from the client's goroutines
		}
	}
	switch f {
	case faultEtcdLeader:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		leader, err := c.etcd.Leader(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kill -9 of etcd member %d (the leader)", leader)
		c.etcd.Stop(leader) // SIGKILL of its process
		waitMore(300, "with 2 of 3 etcd members")
		if err := c.etcd.Restart(leader); err != nil {
			t.Fatal(err)
		}
	case faultS3Restart:
		c.gw.Kill()
		time.Sleep(s3Downtime) // the downtime is the fault
		if err := c.gw.Restart(); err != nil {
			t.Fatal(err)
		}
	case faultRolling:
		// The owner last, so that its topic moves once, as in a real rollout
		// whose order is arbitrary.
		order := []int{}
		for i := range c.brokers {
			if i != owner {
				order = append(order, i)
			}
		}
		order = append(order, owner)
		for _, i := range order {
			p := c.brokers[i]
			start := time.Now()
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("broker b%d did not exit within 30 s of SIGTERM", i)
			}
			c.down[i] = true
			c.brokers[i] = c.launchAt(i, p.brokerPort, p.httpPort, c.extra)
			waitHealthy(t, c.brokers[i].webURL, c.brokers[i].exited)
			c.down[i] = false
			t.Logf("broker b%d restarted in %v", i, time.Since(start).Round(time.Millisecond))
			waitMore(200, fmt.Sprintf("after the restart of b%d", i))
		}
	case faultPartition:
		n := c.netns[owner]
		n.cut(t)
		// The others take the topic over while the owner is cut off.
		waitMore(300, "while the owner is partitioned")
		n.heal(t)
		// The healed broker notices it lost its lease and serves again.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(c.brokers[owner].stderr.String(), "lease") {
			if time.Now().After(deadline) {
				t.Fatal("the partitioned broker did not report losing its lease")
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitHealthy(t, c.brokers[owner].webURL, c.brokers[owner].exited)
		// What the old owner did, with its clock, to compare with the cut.
		for _, l := range strings.Split(c.brokers[owner].stderr.String(), "\n") {
			if strings.Contains(l, "cluster:") || strings.Contains(l, "unload") || strings.Contains(l, "fenced") {
				t.Logf("b%d: %s", owner, l)
			}
		}
	default:
		t.Fatalf("unknown fault %q", f)
	}
}

func TestClusterKillEtcdLeader(t *testing.T) {
	c := startClusterOn(t, etcdtest.StartProcesses(t, 3), 3, "--deduplication-enabled")
	runSchedule(t, c, 11, []fault{faultEtcdLeader})
}

func TestClusterRestartS3Gateway(t *testing.T) {
	c := startCluster(t, 3, "--deduplication-enabled")
	runSchedule(t, c, 12, []fault{faultS3Restart})
}

// rollingMaxGap bounds how long any producer waits for a receipt during a
// rolling restart: a SIGTERM hands bundles over at once (no lease expiry).
const rollingMaxGap = 5 * time.Second

// partitionMaxGap bounds a producer's wait for a receipt across a partition
// of the owner (lease TTL 3 s, then a new owner, under -race and load).
const partitionMaxGap = 15 * time.Second

func TestClusterRollingRestart(t *testing.T) {
	c := startCluster(t, 3, "--deduplication-enabled")
	c.maxGap = rollingMaxGap
	c.batchOnly = true
	runSchedule(t, c, 13, []fault{faultRolling})
}

func TestClusterPartitionFromEtcdAndS3(t *testing.T) {
	if metadataStore != "" {
		t.Skip("cluster tests run their own etcd members: they run once, without MB_TEST_METADATA_STORE")
	}
	if reason := netnsUnavailable(); reason != "" {
		t.Skip("network namespaces unavailable: " + reason)
	}
	c := startPartitionableCluster(t, 3, "--deduplication-enabled")
	// The cut owner gives its bundles up a lease TTL after the cut and fails
	// its stuck appends at once; its producers then move to the new owner
	// (4-5 s measured; about 30 s before the stuck appends were failed).
	c.maxGap = partitionMaxGap
	runSchedule(t, c, 14, []fault{faultPartition})
}

// netnsUnavailable says why the test cannot create network namespaces.
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (iproute2)"
	}
	name := fmt.Sprintf("mbprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return ""
}

// netnsBroker is the network of a broker run in a namespace of its own,
// with two veth pairs on private /30s: one for clients (the broker listens
// and advertises there) and one to its stores, where proxies in the test
// process forward to the etcd members and the gateway on loopback. Cutting
// the second link partitions the broker from etcd and S3, not from clients.
type netnsBroker struct {
	ns        string
	clientIP  string // the broker's address on the client link
	storeLink string // host end of the store link
	storeHost string // the proxies' address
	etcdProxy []string
	s3Proxy   string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetnsBroker creates namespace i of this test process and its links,
// removed when the test ends.
func newNetnsBroker(t *testing.T, i int, etcdEndpoints []string, s3Addr string) *netnsBroker {
	t.Helper()
	pid := os.Getpid()
	// 10.x.y.4i/30: private, unique per test process and broker.
	clientNet := fmt.Sprintf("10.%d.%d", 200+(pid>>8)%24, pid&0xff)
	storeNet := fmt.Sprintf("10.%d.%d", 224+(pid>>8)%24, pid&0xff)
	n := &netnsBroker{ns: fmt.Sprintf("mbt%d-%d", pid, i)}
	ipCmd(t, "netns", "add", n.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns).Run() })
	ipCmd(t, "-n", n.ns, "link", "set", "lo", "up")
	link := func(kind, prefix string) (hostEnd, hostIP, nsIP string) {
		hostEnd = fmt.Sprintf("mb%s%d-%dh", kind, pid, i)
		nsEnd := fmt.Sprintf("mb%s%d-%dn", kind, pid, i)
		hostIP = fmt.Sprintf("%s.%d", prefix, 4*i+1)
		nsIP = fmt.Sprintf("%s.%d", prefix, 4*i+2)
		ipCmd(t, "link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd)
		ipCmd(t, "link", "set", nsEnd, "netns", n.ns)
		ipCmd(t, "addr", "add", hostIP+"/30", "dev", hostEnd)
		ipCmd(t, "link", "set", hostEnd, "up")
		ipCmd(t, "-n", n.ns, "addr", "add", nsIP+"/30", "dev", nsEnd)
		ipCmd(t, "-n", n.ns, "link", "set", nsEnd, "up")
		return
	}
	_, _, n.clientIP = link("c", clientNet)
	n.storeLink, n.storeHost, _ = link("s", storeNet)
	var ls []net.Listener
	proxy := func(target string) string {
		l, err := net.Listen("tcp", n.storeHost+":0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		go serveProxy(l, target)
		return l.Addr().String()
	}
	for _, ep := range etcdEndpoints {
		n.etcdProxy = append(n.etcdProxy, proxy(ep))
	}
	n.s3Proxy = proxy(s3Addr)
	t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
	})
	return n
}

// serveProxy forwards each connection to target until l is closed.
func serveProxy(l net.Listener, target string) {
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer out.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.(*net.TCPConn).CloseWrite() }()
			wg.Wait()
		}()
	}
}

// cut takes the store link down: the broker's packets to etcd and S3 go
// nowhere (no reset: connections hang, as in a real partition).
func (n *netnsBroker) cut(t *testing.T) {
	t.Helper()
	t.Logf("partition at %s: %s cut from etcd and S3 (link %s down)", time.Now().UTC().Format("15:04:05.000"), n.ns, n.storeLink)
	ipCmd(t, "link", "set", n.storeLink, "down")
}

func (n *netnsBroker) heal(t *testing.T) {
	t.Helper()
	t.Logf("partition healed at %s (link %s up)", time.Now().UTC().Format("15:04:05.000"), n.storeLink)
	ipCmd(t, "link", "set", n.storeLink, "up")
}

// startPartitionableCluster is startCluster with every broker in a network
// namespace of its own (whichever owns the topic can be partitioned).
func startPartitionableCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, etcd: etcdtest.Start(t, 3), down: map[int]bool{}, extra: extra, batchOnly: true}
	c.gw = s3test.Start(t)
	c.gw.Bucket(t, "mbcluster", nil)
	s3Addr := strings.TrimPrefix(c.gw.Endpoint, "http://")
	for i := range n {
		nb := newNetnsBroker(t, i, c.etcd.Endpoints(), s3Addr)
		c.netns = append(c.netns, nb)
		c.brokers = append(c.brokers, c.launchIn(i, nb, extra))
	}
	for _, p := range c.brokers {
		waitHealthy(t, p.webURL, p.exited)
	}
	return c
}

// launchIn starts broker i in its namespace (ip netns exec runs mb itself:
// signals reach the broker).
func (c *testCluster) launchIn(i int, nb *netnsBroker, extra []string) *proc {
	t := c.t
	bp, hp := 6650, 8080 // the namespace's own ports: nothing else listens there
	p := &proc{dataDir: t.TempDir(), brokerPort: bp, httpPort: hp,
		brokerURL: fmt.Sprintf("pulsar://%s:%d", nb.clientIP, bp), webURL: fmt.Sprintf("http://%s:%d", nb.clientIP, hp),
		exited: make(chan struct{}), stderr: &syncBuffer{}}
	args := append([]string{"netns", "exec", nb.ns, mbBinary, "broker", "--data-dir", p.dataDir,
		"--broker-addr", fmt.Sprintf("%s:%d", nb.clientIP, bp), "--http-addr", fmt.Sprintf("%s:%d", nb.clientIP, hp),
		"--grpc-addr", nb.clientIP + ":8090",
		"--advertised-address", nb.clientIP, "--broker-id", fmt.Sprintf("b%d", i), "--log-level", "info",
		"--metadata-store", "etcd://" + strings.Join(nb.etcdProxy, ","), "--metadata-prefix", "/mbtest",
		"--storage", "s3", "--bucket", "mbcluster", "--endpoint", "http://" + nb.s3Proxy, "--path-style",
		"--lease-ttl", clusterLeaseTTL.String(), "--wal-max-delay", "2ms"}, extra...)
	p.cmd = exec.Command("ip", args...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = os.Environ()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("broker b%d stderr:\n%s", i, p.stderr.String())
		}
	})
	return p
}
