package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// seqSet records the data generator's sequence numbers a consumer saw.
type seqSet struct {
	mu  sync.Mutex
	n   map[int]int
	max int
}

func (s *seqSet) add(seq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[seq]++
	s.max = max(s.max, seq)
}

func (s *seqSet) snapshot() (map[int]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[int]int, len(s.n))
	for k, v := range s.n {
		c[k] = v
	}
	return c, s.max
}

// collectSeqs consumes topic from the earliest message into a seqSet.
func collectSeqs(t *testing.T, c pulsar.Client, topic, sub string) *seqSet {
	t.Helper()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	s := &seqSet{n: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := cons.Receive(ctx)
			if err != nil {
				return
			}
			var v struct{ Seq int }
			if json.Unmarshal(m.Payload(), &v) == nil {
				s.add(v.Seq)
			}
			cons.Ack(m)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cons.Close() })
	return s
}

// instanceWorkers reads a status answer's workerId of each instance
// (running ones only; "" for the others).
func instanceWorkers(t *testing.T, url string) ([]string, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	var st struct {
		Instances []struct {
			Status struct {
				Running  bool   `json:"running"`
				WorkerID string `json:"workerId"`
			} `json:"status"`
		} `json:"instances"`
	}
	if json.Unmarshal(b, &st) != nil {
		return nil, false
	}
	out := make([]string, len(st.Instances))
	for i, in := range st.Instances {
		if in.Status.Running {
			out[i] = in.Status.WorkerID
		}
	}
	return out, true
}

// allRunningOn reports whether every instance runs, none on a down broker,
// and on how many distinct brokers.
func allRunningOn(ws []string, n int, down string) (bool, int) {
	if len(ws) != n {
		return false, 0
	}
	seen := map[string]bool{}
	for _, w := range ws {
		if w == "" || w == down {
			return false, 0
		}
		seen[w] = true
	}
	return true, len(seen)
}

// TestClusterWorkersSpreadAndFailover: on 3 brokers (workers on by
// default), a WASM identity function of parallelism 3 and a data-generator
// source feeding it. The function's instances run on 3 different brokers
// (status workerIds, asked of any broker); kill -9 of the broker running
// the source (and one function instance) moves both to live brokers within
// about the lease TTL, messages keep flowing, and every generated record
// reaches the function's output (at least once: nothing lost).
func TestClusterWorkersSpreadAndFailover(t *testing.T) {
	module := moduleFile(t, "../examples/functions/identity")
	c := startCluster(t, 3)
	// A fourth broker with both workers off: it runs no instance but
	// answers the API.
	c.brokers = append(c.brokers, c.launch(3, []string{"--functions-worker-enabled=false", "--connectors-enabled=false"}))
	waitHealthy(t, c.brokers[3].webURL, c.brokers[3].exited)
	client := newClient(t, c.serviceURL())
	in, out := uniqueTopic(t)+"-in", uniqueTopic(t)+"-out"
	input := collectSeqs(t, client, in, "audit")
	output := collectSeqs(t, client, out, "reader")

	cfg := &utils.FunctionConfig{Tenant: "public", Namespace: "default", Name: "spread", Inputs: []string{in}, Output: out,
		Parallelism: 3, SubscriptionPosition: "Earliest"}
	createFunctionHTTP(t, c.brokers[0].webURL, cfg, module)
	src := fmt.Sprintf(`{"tenant":"public","namespace":"default","name":"gen","archive":"builtin://data-generator","topicName":%q,"configs":{"ratePerSecond":200}}`, in)
	if code, body := postJSON(t, http.MethodPost, c.brokers[1].webURL+"/admin/v3/sources/public/default/gen", src); code != http.StatusNoContent {
		t.Fatalf("create source: %d %s", code, body)
	}
	fnStatus := "/admin/v3/functions/public/default/spread/status"
	srcStatus := "/admin/v3/sources/public/default/gen/status"

	start := time.Now()
	var ws []string
	waitFor(t, "3 function instances on 3 brokers (status from any broker)", 90*time.Second, func() bool {
		for _, p := range c.brokers {
			got, ok := instanceWorkers(t, p.webURL+fnStatus)
			if running, spread := allRunningOn(got, 3, ""); !ok || !running || spread != 3 {
				return false
			}
			ws = got
		}
		return true
	})
	t.Logf("function instances on %v after %s", ws, time.Since(start).Round(time.Millisecond))
	// Restarting one instance through a broker that does not run it: 307
	// to the one that does (followed).
	resp, err := noRedirect.Post(c.brokers[3].webURL+"/admin/v3/functions/public/default/spread/0/restart", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasSuffix(loc, "/admin/v3/functions/public/default/spread/0/restart") {
		t.Fatalf("restart of instance 0 through b3: %s, Location %q", resp.Status, loc)
	}
	if code, body := postJSON(t, http.MethodPost, loc, ""); code != http.StatusNoContent {
		t.Fatalf("restart of instance 0 at %s: %d %s", loc, code, body)
	}
	waitFor(t, "100 generated records through the function", 20*time.Second, func() bool {
		_, m := output.snapshot()
		return m >= 100
	})
	srcWorkers, _ := instanceWorkers(t, c.brokers[2].webURL+srcStatus)
	if len(srcWorkers) != 1 || srcWorkers[0] == "" {
		t.Fatalf("source status workers %v", srcWorkers)
	}
	victim := -1
	for i := range c.brokers {
		if srcWorkers[0] == fmt.Sprintf("b%d", i) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("source runs on unknown worker %q", srcWorkers[0])
	}

	// kill -9 the broker running the source and one function instance.
	_, before := output.snapshot()
	killed := time.Now()
	c.brokers[victim].cmd.Process.Kill()
	<-c.brokers[victim].exited
	c.down[victim] = true
	down := fmt.Sprintf("b%d", victim)
	live := c.brokers[3].webURL // the API-only broker answers for the others
	waitFor(t, "the instances of the killed broker running on live brokers", 20*time.Second, func() bool {
		f, ok1 := instanceWorkers(t, live+fnStatus)
		s, ok2 := instanceWorkers(t, live+srcStatus)
		fr, spread := allRunningOn(f, 3, down)
		sr, _ := allRunningOn(s, 1, down)
		return ok1 && ok2 && fr && sr && spread == 2
	})
	moved := time.Since(killed)
	waitFor(t, "records generated after the kill through the function", 20*time.Second, func() bool {
		_, m := output.snapshot()
		return m >= before+200
	})
	t.Logf("instances moved %s after kill -9 (lease TTL %s); output went on from seq %d", moved.Round(time.Millisecond), clusterLeaseTTL, before)

	// Stop the source (from a live broker) and check: the input has no
	// gap, and the output holds every input record.
	if code, body := postJSON(t, http.MethodPost, live+"/admin/v3/sources/public/default/gen/stop", ""); code != http.StatusNoContent {
		t.Fatalf("stop source: %d %s", code, body)
	}
	waitFor(t, "every generated record in the output", 20*time.Second, func() bool {
		ins, maxIn := input.snapshot()
		outs, _ := output.snapshot()
		for seq := 0; seq <= maxIn; seq++ {
			if ins[seq] == 0 || outs[seq] == 0 {
				return false
			}
		}
		return maxIn > before
	})
	ins, maxIn := input.snapshot()
	outs, _ := output.snapshot()
	dupIn, dupOut := 0, 0
	for seq := 0; seq <= maxIn; seq++ {
		dupIn += ins[seq] - 1
		dupOut += outs[seq] - 1
	}
	t.Logf("%d records generated: %d sent again after the failover, %d output duplicates (at least once)", maxIn+1, dupIn, dupOut)
}
