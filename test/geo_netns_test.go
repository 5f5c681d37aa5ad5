package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// geoNetns is a network namespace holding one cluster's broker, joined to
// the host by two veth pairs: "repl" carries replication (the link the
// test cuts), "client" carries the test's clients (never cut), so both
// sides take traffic during the partition.
type geoNetns struct {
	name                     string
	replHost, replNS         string // addresses on the repl link
	clientNS                 string // B's address for clients
	replHostDev, replPeerDev string
}

// run runs ip with args; it fails the test on error.
func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newGeoNetns creates the namespace and links on private addresses, or
// skips the test when this machine does not let it.
func newGeoNetns(t *testing.T) *geoNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2) to create network namespaces")
	}
	id := os.Getpid() % 200
	n := &geoNetns{name: fmt.Sprintf("mbgeo%d", os.Getpid()),
		replHost: fmt.Sprintf("10.251.%d.1", id), replNS: fmt.Sprintf("10.251.%d.2", id),
		clientNS:    fmt.Sprintf("10.250.%d.2", id),
		replHostDev: fmt.Sprintf("mbgr%d", os.Getpid()), replPeerDev: fmt.Sprintf("mbgrp%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add is not permitted here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.replHostDev).Run()
		exec.Command("ip", "link", "del", fmt.Sprintf("mbgc%d", os.Getpid())).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	clientHostDev, clientPeerDev := fmt.Sprintf("mbgc%d", os.Getpid()), fmt.Sprintf("mbgcp%d", os.Getpid())
	for _, l := range []struct{ host, peer, hostAddr, nsAddr string }{
		{n.replHostDev, n.replPeerDev, n.replHost, n.replNS},
		{clientHostDev, clientPeerDev, fmt.Sprintf("10.250.%d.1", id), n.clientNS},
	} {
		if out, err := exec.Command("ip", "link", "add", l.host, "type", "veth", "peer", "name", l.peer).CombinedOutput(); err != nil {
			t.Skipf("veth pairs are not permitted here: %v: %s", err, out)
		}
		ipRun(t, "link", "set", l.peer, "netns", n.name)
		ipRun(t, "addr", "add", l.hostAddr+"/30", "dev", l.host)
		ipRun(t, "link", "set", l.host, "up")
		ipRun(t, "-n", n.name, "addr", "add", l.nsAddr+"/30", "dev", l.peer)
		ipRun(t, "-n", n.name, "link", "set", l.peer, "up")
	}
	ipRun(t, "-n", n.name, "link", "set", "lo", "up")
	return n
}

// cut and heal take the replication link down and up.
func (n *geoNetns) cut(t *testing.T)  { ipRun(t, "link", "set", n.replHostDev, "down") }
func (n *geoNetns) heal(t *testing.T) { ipRun(t, "link", "set", n.replHostDev, "up") }

// startNetnsProc starts an mb standalone listening on every address of
// its namespace (ns "" for the host's), advertising advertised.
func startNetnsProc(t *testing.T, ns, advertised, cluster string) *proc {
	t.Helper()
	bp, hp := freePort(t), freePort(t)
	p := &proc{dataDir: t.TempDir(), brokerPort: bp, httpPort: hp, exited: make(chan struct{}), stderr: &syncBuffer{},
		brokerURL: fmt.Sprintf("pulsar://%s:%d", advertised, bp), webURL: fmt.Sprintf("http://%s:%d", advertised, hp)}
	args := []string{"standalone", "--data-dir", p.dataDir, "--cluster-name", cluster,
		"--broker-addr", fmt.Sprintf("0.0.0.0:%d", bp), "--http-addr", fmt.Sprintf("0.0.0.0:%d", hp),
		"--advertised-address", advertised, "--log-level", "warn"}
	if ns != "" {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, mbBinary}, args...)...)
	} else {
		p.cmd = exec.Command(mbBinary, args...)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("mb %s stderr:\n%s", cluster, p.stderr.String())
		}
	})
	waitHealthy(t, p.webURL, p.exited)
	return p
}

// A real network partition: b's broker runs in its own network namespace;
// the link replication uses is cut (ip link set down) while producers
// write on both sides, then healed. Both sides converge: every message
// exactly once, in order per key, in both clusters.
func TestGeoReplicationNetworkPartition(t *testing.T) {
	skipOnEtcd(t) // the namespace cannot reach the host's etcd
	n := newGeoNetns(t)
	pa := startNetnsProc(t, "", "127.0.0.1", "a")
	pb := startNetnsProc(t, n.name, n.clientNS, "b")
	// Clients use 127.0.0.1 (a) and b's client address; each cluster's
	// record of the other names its address on the replication link.
	portOf := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }
	a := geoCluster{name: "a", brokerURL: pa.brokerURL, webURL: pa.webURL}
	b := geoCluster{name: "b", brokerURL: pb.brokerURL, webURL: pb.webURL}
	aOnLink := geoCluster{name: "a", brokerURL: "pulsar://" + n.replHost + ":" + portOf(pa.brokerURL), webURL: "http://" + n.replHost + ":" + portOf(pa.webURL)}
	bOnLink := geoCluster{name: "b", brokerURL: "pulsar://" + n.replNS + ":" + portOf(pb.brokerURL), webURL: "http://" + n.replNS + ":" + portOf(pb.webURL)}
	for _, side := range []struct{ self, other geoCluster }{{a, bOnLink}, {b, aOnLink}} {
		expectHTTP(t, "PUT", side.self.webURL+"/admin/v2/clusters/"+side.other.name,
			fmt.Sprintf(`{"serviceUrl":%q,"brokerServiceUrl":%q}`, side.other.webURL, side.other.brokerURL), 204)
		expectHTTP(t, "POST", side.self.webURL+"/admin/v2/tenants/public", `{"adminRoles":[],"allowedClusters":["a","b"]}`, 204)
		expectHTTP(t, "PUT", side.self.webURL+"/admin/v2/namespaces/public/part", "", 204)
		expectHTTP(t, "POST", side.self.webURL+"/admin/v2/namespaces/public/part/replication", `["a","b"]`, 204)
	}
	topic := "persistent://public/part/t"
	sent := map[string][]string{}
	var mu sync.Mutex
	geoProduce(t, a, topic, 0, 100, sent, &mu)
	geoProduce(t, b, topic, 0, 100, sent, &mu)
	linked := func(what string) {
		t.Helper()
		adminEventually(t, what, func() bool {
			for _, c := range []geoCluster{a, b} {
				for _, st := range replicationStats(t, c.webURL, topic) {
					if !st.Connected || st.ReplicationBacklog != 0 {
						return false
					}
				}
			}
			return true
		})
	}
	linked("both links up and drained before the cut")

	n.cut(t)
	cutAt := time.Now()
	geoProduce(t, a, topic, 100, 400, sent, &mu)
	geoProduce(t, b, topic, 100, 400, sent, &mu)
	if st := replicationStats(t, a.webURL, topic)["b"]; st.ReplicationBacklog == 0 {
		t.Fatalf("a's backlog for b is empty during the partition: %+v", st)
	}
	time.Sleep(max(0, 2*time.Second-time.Since(cutAt))) // a partition that lasts: the links see it
	n.heal(t)
	linked("both links drained after the heal")

	for _, c := range []geoCluster{a, b} {
		got := receiveAll(t, c.brokerURL, topic, "check", 800, 2*time.Second)
		checkExactlyOnceInOrder(t, c.name, got, sent)
	}
}
