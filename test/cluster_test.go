package test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// clusterLeaseTTL keeps failovers short in tests (production default 10 s).
const clusterLeaseTTL = 3 * time.Second

// testCluster is 3 etcd members, the Versity gateway and brokers run as
// `mb broker` processes.
type testCluster struct {
	t       *testing.T
	etcd    *etcdtest.Cluster
	gw      *s3test.Gateway
	brokers []*proc
	down    map[int]bool
	extra   []string      // flags of every broker (restarts reuse them)
	maxGap  time.Duration // when set, runSchedule fails if a producer waits longer for a receipt
	// batchOnly keeps batching on for every producer: pulsar-client-go
	// v0.19.0 races (-race) on a non-batched producer's name, rewritten by a
	// reconnect while a send marshals it; every fault reconnects producers,
	// so all the cluster tests set it (startCluster).
	batchOnly bool
	netns     []*netnsBroker // per broker, when each runs in a network namespace (cluster_faults_test.go)
	// prefix and bucket, when set, replace the metadata prefix /mbtest and
	// the bucket mbcluster (two clusters on one etcd and gateway:
	// geo_cluster_test.go).
	prefix, bucket string
}

func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	if metadataStore != "" {
		t.Skip("cluster tests run their own etcd members: they run once, without MB_TEST_METADATA_STORE")
	}
	return startClusterOn(t, etcdtest.Start(t, 3), n, extra...)
}

// startClusterOn starts the gateway and n brokers on the given etcd members.
func startClusterOn(t *testing.T, etcd *etcdtest.Cluster, n int, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, etcd: etcd, gw: s3test.Start(t), down: map[int]bool{}, batchOnly: true}
	c.gw.Bucket(t, "mbcluster", nil)
	c.extra = extra
	for i := range n {
		c.brokers = append(c.brokers, c.launch(i, extra))
	}
	for _, p := range c.brokers {
		waitHealthy(t, p.webURL, p.exited)
	}
	return c
}

func (c *testCluster) launch(i int, extra []string) *proc {
	return c.launchAt(i, freePort(c.t), freePort(c.t), extra)
}

// launchAt starts broker i on the given ports (a restart keeps its ports).
func (c *testCluster) launchAt(i, bp, hp int, extra []string) *proc {
	t := c.t
	p := &proc{dataDir: t.TempDir(), brokerPort: bp, httpPort: hp,
		brokerURL: fmt.Sprintf("pulsar://127.0.0.1:%d", bp), webURL: fmt.Sprintf("http://127.0.0.1:%d", hp),
		exited: make(chan struct{}), stderr: &syncBuffer{}}
	args := append([]string{"broker", "--data-dir", p.dataDir,
		"--broker-addr", fmt.Sprintf("127.0.0.1:%d", bp), "--http-addr", fmt.Sprintf("127.0.0.1:%d", hp),
		"--advertised-address", "127.0.0.1", "--broker-id", fmt.Sprintf("b%d", i), "--log-level", "info",
		"--metadata-store", c.etcd.URL(), "--metadata-prefix", cmp.Or(c.prefix, "/mbtest"),
		"--storage", "s3", "--bucket", cmp.Or(c.bucket, "mbcluster"), "--endpoint", c.gw.Endpoint, "--path-style",
		"--lease-ttl", clusterLeaseTTL.String(), "--wal-max-delay", "2ms",
		"--background-nice", "1", "--background-sched-idle=false"}, extra...) // as launchProc, for CI
	p.cmd = exec.Command(mbBinary, args...)
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

// serviceURL lists every broker: the client picks another when one is down.
func (c *testCluster) serviceURL() string {
	var hosts []string
	for _, p := range c.brokers {
		hosts = append(hosts, strings.TrimPrefix(p.brokerURL, "pulsar://"))
	}
	return "pulsar://" + strings.Join(hosts, ",")
}

var noRedirect = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// owner returns the index of the broker that owns topic, asking a live
// broker's admin API (200 here, or 307 to the owner).
func (c *testCluster) owner(topic string) int {
	t := c.t
	t.Helper()
	path := "/admin/v2/persistent/" + strings.TrimPrefix(topic, "persistent://") + "/stats"
	for i, p := range c.brokers {
		if c.down[i] {
			continue
		}
		resp, err := noRedirect.Get(p.webURL + path)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return i
		case http.StatusTemporaryRedirect:
			u, _ := url.Parse(resp.Header.Get("Location"))
			for j, q := range c.brokers {
				if strings.HasSuffix(q.webURL, "//"+u.Host) {
					return j
				}
			}
		}
	}
	t.Fatalf("no broker answers for the owner of %s", topic)
	return -1
}

func TestClusterProduceConsumeAnyBroker(t *testing.T) {
	c := startCluster(t, 3)
	topics := make([]string, 6)
	for i := range topics {
		topics[i] = fmt.Sprintf("persistent://public/default/any-%d-%d", i, time.Now().UnixNano())
	}
	// Produce through broker 0, consume through broker 2: lookups send both to the owners.
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.brokers[0].brokerURL, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cc, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.brokers[2].brokerURL, Logger: nopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	owners := map[int]bool{}
	for _, topic := range topics {
		p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		cons, err := cc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s",
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range receiveN(t, cons, 20, 30*time.Second) {
			if string(m.Payload()) != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is %q", topic, i, m.Payload())
			}
			cons.Ack(m)
		}
		cons.Close()
		owners[c.owner(topic)] = true
	}
	if len(owners) < 2 {
		t.Fatalf("6 topics all owned by one broker: %v (bundles not spread over the least-loaded brokers)", owners)
	}
	// Admin: live brokers, bundles, a topic call redirected to its owner and followed.
	var brokers []string
	getJSON(t, c.brokers[1].webURL+"/admin/v2/brokers/standalone", &brokers)
	if len(brokers) != 3 {
		t.Fatalf("brokers = %v", brokers)
	}
	out, err := exec.Command(mbBinary, "admin", "--admin-url", c.brokers[0].webURL, "brokers", "list", "standalone").CombinedOutput()
	if err != nil || len(strings.Fields(string(out))) != 3 {
		t.Fatalf("mb admin brokers list: %v: %s", err, out)
	}
	out, err = exec.Command(mbBinary, "admin", "--admin-url", c.brokers[0].webURL, "namespaces", "bundles", "public/default").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0xc0000000") {
		t.Fatalf("mb admin namespaces bundles: %v: %s", err, out)
	}
	var bundles struct {
		Boundaries []string `json:"boundaries"`
		NumBundles int      `json:"numBundles"`
	}
	getJSON(t, c.brokers[1].webURL+"/admin/v2/namespaces/public/default/bundles", &bundles)
	if bundles.NumBundles != 4 || len(bundles.Boundaries) != 5 || bundles.Boundaries[4] != "0xffffffff" {
		t.Fatalf("bundles = %+v", bundles)
	}
	for i := range c.brokers {
		var st struct {
			MsgInCounter int64 `json:"msgInCounter"`
		}
		getJSON(t, c.brokers[i].webURL+"/admin/v2/persistent/"+strings.TrimPrefix(topics[0], "persistent://")+"/stats", &st)
	}
	// Unload a bundle on its owner: the topic moves (or stays) and still serves.
	own := c.owner(topics[0])
	req, _ := http.NewRequest(http.MethodPut, c.brokers[(own+1)%3].webURL+"/admin/v2/namespaces/public/default/"+
		bundleOf(t, c, topics[0])+"/unload", nil)
	resp, err := http.DefaultClient.Do(req) // redirected to the owner
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unload: %s", resp.Status)
	}
	cons, err := cc.Subscribe(pulsar.ConsumerOptions{Topic: topics[0], SubscriptionName: "after-unload",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	receiveN(t, cons, 20, 30*time.Second)
}

// bundleOf finds the bundle of topic by unloading nothing: it asks each
// boundary range of the owner... simpler: compute it like the broker.
func bundleOf(t *testing.T, _ *testCluster, topic string) string {
	t.Helper()
	h := crc32IEEE(topic)
	lo := (h / 0x40000000) * 0x40000000
	hi := lo + 0x40000000
	if hi > 0xffffffff {
		hi = 0xffffffff
	}
	return fmt.Sprintf("0x%08x_0x%08x", lo, hi)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", u, resp.Status, body)
	}
	if err := jsonUnmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}

// fault is one step of a fault schedule, applied to the owner of the topic.
type fault string

const (
	faultKill  fault = "kill-9"  // the owner dies
	faultPause fault = "sigstop" // the owner pauses past its lease, then resumes (fenced)
	faultTerm  fault = "sigterm" // the owner hands its bundles over and exits
)

// history is what producers got acknowledged and what consumers saw.
type history struct {
	mu       sync.Mutex
	acked    map[string]bool
	failed   int
	received map[string]int
	firstAt  map[string]time.Time // first delivery to the live consumer
	lastAck  map[int]time.Time    // per producer, its last receipt
	maxGap   time.Duration        // longest time a producer went without a receipt
}

// runSchedule produces unique payloads with deduplicating producers while
// applying the faults, one at a time, to the topic's owner; then checks
// the history: every acknowledged message stored exactly once, in each
// producer's order, and the live consumer resumed from its cursor.
func runSchedule(t *testing.T, c *testCluster, seed uint64, faults []fault) {
	t.Logf("fault schedule (seed %d; replay with MB_CLUSTER_SEED=%d): %v", seed, seed, faults)
	topic := fmt.Sprintf("persistent://public/default/jepsen-%d", time.Now().UnixNano())
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.serviceURL(), Logger: nopLogger(),
		OperationTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	h := &history{acked: map[string]bool{}, received: map[string]int{}, firstAt: map[string]time.Time{}, lastAck: map[int]time.Time{}}
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "live",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	// The check subscription exists from the start: retention keeps what it
	// has not read (the live one acks everything, which lets the rest go).
	check, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "check",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	check.Close()
	consumed := make(chan struct{})
	cctx, cancelConsume := context.WithCancel(context.Background())
	go func() {
		defer close(consumed)
		for {
			m, err := cons.Receive(cctx)
			if err != nil {
				return
			}
			h.mu.Lock()
			h.received[string(m.Payload())]++
			if _, ok := h.firstAt[string(m.Payload())]; !ok {
				h.firstAt[string(m.Payload())] = time.Now()
			}
			h.mu.Unlock()
			cons.Ack(m)
		}
	}()
	start := time.Now()
	const producers = 3
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopProducers := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	// On a failure, the producers stop before the deferred client.Close:
	// the Go client panics on a send to a producer it closed.
	defer stopProducers()
	var firstAfter sync.Once
	var faultAt time.Time
	var failover time.Duration
	var faultMu sync.Mutex
	for pi := range producers {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: fmt.Sprintf("p%d-%d", pi, seed),
			SendTimeout: 60 * time.Second, DisableBatching: pi == 0 && !c.batchOnly, MaxPendingMessages: 200})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					fctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					p.FlushWithCtx(fctx)
					cancel()
					return
				default:
				}
				payload := fmt.Sprintf("p%d-%06d", pi, i)
				p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(payload)},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						h.mu.Lock()
						defer h.mu.Unlock()
						if err != nil {
							h.failed++
							return
						}
						h.acked[payload] = true
						now := time.Now()
						if last, ok := h.lastAck[pi]; ok && now.Sub(last) > h.maxGap {
							h.maxGap = now.Sub(last)
						}
						h.lastAck[pi] = now
						faultMu.Lock()
						if !faultAt.IsZero() && failover == 0 {
							firstAfter.Do(func() { failover = time.Since(faultAt) })
						}
						faultMu.Unlock()
					})
				if i%50 == 49 {
					time.Sleep(5 * time.Millisecond) // a busy topic, not a flood the gateway queues
				}
			}
		}()
	}
	ackedCount := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.acked)
	}
	waitAcked := func(n int) {
		deadline := time.Now().Add(90 * time.Second)
		for ackedCount() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages acknowledged, want %d", ackedCount(), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitAcked(500)
	// Some acks must be old enough to be checkpointed before the first
	// fault, so that the cursor's resumption is checked.
	time.Sleep(time.Until(start.Add(4 * time.Second)))
	var firstFault time.Time
	for _, f := range faults {
		if firstFault.IsZero() {
			firstFault = time.Now()
		}
		owner := c.owner(topic)
		p := c.brokers[owner]
		before := ackedCount()
		faultMu.Lock()
		faultAt, failover, firstAfter = time.Now(), 0, sync.Once{}
		faultMu.Unlock()
		t.Logf("%s on broker b%d (owner of the topic) after %d acknowledged messages", f, owner, before)
		switch f {
		case faultKill:
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
			c.down[owner] = true
		case faultTerm:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatal("broker did not exit within 30 s of SIGTERM")
			}
			c.down[owner] = true
		case faultPause:
			p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(clusterLeaseTTL + 3*time.Second) // the pause itself is the fault: past the lease
			p.cmd.Process.Signal(syscall.SIGCONT)
		default:
			c.applyFault(f, owner, func() int { return ackedCount() }) // cluster_faults_test.go
		}
		waitAcked(before + 500)
		faultMu.Lock()
		t.Logf("%s: first acknowledged send %v after the fault", f, failover)
		faultMu.Unlock()
		if f == faultPause {
			// The paused broker noticed its lease was gone and gave its bundles up.
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(p.stderr.String(), "lease") {
				if time.Now().After(deadline) {
					t.Fatal("the resumed broker did not report losing its lease")
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	stopProducers()

	// Read everything stored, from the start, on a fresh subscription.
	h.mu.Lock()
	acked := make([]string, 0, len(h.acked))
	for p := range h.acked {
		acked = append(acked, p)
	}
	failed := h.failed
	h.mu.Unlock()
	// The check reads what was stored; the topic may still be moving to
	// a new owner (ServiceNotReady), which an application would retry too.
	var reader pulsar.Consumer
	for deadline := time.Now().Add(time.Minute); ; {
		reader, err = client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "check",
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err == nil || time.Now().After(deadline) {
			break
		}
		t.Logf("subscribing to check the topic: %v; again in 1 s", err)
		time.Sleep(time.Second) // a client's retry backoff
	}
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	stored := map[string]int{}
	lastSeq := map[string]int{}
	var reordered []string
	ackedSet := map[string]bool{}
	for _, a := range acked {
		ackedSet[a] = true
	}
	missing := len(acked)
	deadline := time.Now().Add(60 * time.Second)
	for missing > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		m, err := reader.Receive(ctx)
		cancel()
		if err != nil {
			break
		}
		reader.Ack(m)
		pl := string(m.Payload())
		stored[pl]++
		if stored[pl] == 1 && ackedSet[pl] {
			missing--
		}
		prod, seqStr, _ := strings.Cut(pl, "-")
		seq, _ := strconv.Atoi(seqStr)
		if last, ok := lastSeq[prod]; ok && seq <= last && stored[pl] == 1 {
			reordered = append(reordered, pl)
		}
		lastSeq[prod] = max(lastSeq[prod], seq)
	}
	// Drain what remains (unacknowledged but stored messages may follow).
	expectDrained(reader, stored)
	var lost, dups []string
	for _, a := range acked {
		if stored[a] == 0 {
			lost = append(lost, a)
		}
	}
	for p, n := range stored {
		if n > 1 {
			dups = append(dups, p)
		}
	}
	slices.Sort(lost)
	slices.Sort(dups)
	h.mu.Lock()
	maxGap := h.maxGap
	h.mu.Unlock()
	t.Logf("history: %d acknowledged, %d failed sends, %d stored; longest a producer went without a receipt: %v",
		len(acked), failed, len(stored), maxGap.Round(time.Millisecond))
	if c.maxGap > 0 && maxGap > c.maxGap {
		t.Errorf("a producer went %v without a receipt, more than the %v allowed", maxGap.Round(time.Millisecond), c.maxGap)
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged messages lost, e.g. %v", len(lost), lost[:min(10, len(lost))])
	}
	if len(dups) > 0 {
		t.Errorf("%d messages stored more than once, e.g. %v", len(dups), dups[:min(10, len(dups))])
	}
	if len(reordered) > 0 {
		t.Errorf("%d messages out of their producer's order, e.g. %v", len(reordered), reordered[:min(10, len(reordered))])
	}
	// The live consumer resumed from its cursor: it saw every acknowledged
	// message, and redeliveries (acks not yet checkpointed) are few.
	cancelConsume()
	<-consumed
	cons.Close()
	h.mu.Lock()
	redelivered, old, oldAgain := 0, 0, 0
	for p, n := range h.received {
		redelivered += n - 1
		// Acks sent 2 s before the first fault were checkpointed (ack
		// grouping 100 ms, cursor save 200 ms, checkpoint 1 s): the new
		// owner's cursor is past them.
		if h.firstAt[p].Before(firstFault.Add(-2 * time.Second)) {
			old++
			if n > 1 {
				oldAgain++
			}
		}
	}
	h.mu.Unlock()
	t.Logf("live consumer: %d redeliveries over %d faults; %d of %d messages acked 2 s before the first fault delivered again",
		redelivered, len(faults), oldAgain, old)
	if oldAgain > 0 {
		t.Errorf("%d messages acknowledged 2 s before the fault were delivered again: the cursor did not resume", oldAgain)
	}
}

// expectDrained reads what is left quickly (nothing is awaited: the
// acknowledged messages were all found).
func expectDrained(r pulsar.Consumer, stored map[string]int) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := r.Receive(ctx)
		cancel()
		if err != nil {
			return
		}
		r.Ack(m)
		stored[string(m.Payload())]++
	}
}

func TestClusterKillOwnerUnderLoad(t *testing.T) {
	c := startCluster(t, 3, "--deduplication-enabled")
	runSchedule(t, c, 1, []fault{faultKill})
}

func TestClusterPausedOwnerIsFenced(t *testing.T) {
	c := startCluster(t, 3, "--deduplication-enabled")
	runSchedule(t, c, 2, []fault{faultPause})
}

// TestClusterFaultSchedule is the Jepsen-style run: a seeded schedule of
// two faults (MB_CLUSTER_SEED replays one).
func TestClusterFaultSchedule(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MB_CLUSTER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MB_CLUSTER_SEED=%q: %v", s, err)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	kinds := []fault{faultKill, faultPause, faultTerm}
	schedule := []fault{kinds[rng.IntN(3)], kinds[rng.IntN(3)]}
	c := startCluster(t, 3, "--deduplication-enabled")
	runSchedule(t, c, seed, schedule)
}

func crc32IEEE(s string) uint64 { return uint64(crc32.ChecksumIEEE([]byte(s))) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
