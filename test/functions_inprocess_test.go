package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// functionStatusInProcess reads the first instance's inProcess field of a
// function's status (false while it is not running).
func functionStatusInProcess(t *testing.T, webURL, name string) (running, inProcess bool) {
	t.Helper()
	var st struct {
		Instances []struct {
			Status struct {
				Running   bool `json:"running"`
				InProcess bool `json:"inProcess"`
			} `json:"status"`
		} `json:"instances"`
	}
	getJSON(t, webURL+"/admin/v3/functions/public/default/"+name+"/status", &st)
	if len(st.Instances) == 0 {
		return false, false
	}
	return st.Instances[0].Status.Running, st.Instances[0].Status.InProcess
}

// TestFunctionAtLeastOnceKill9InProcess kills the broker while an
// ATLEAST_ONCE identity function is half way through its input, on the
// in-process path (the client path with MB_TEST_FUNCTION_INPROCESS=0):
// after the restart every input is in the output (duplicates allowed, no
// loss), the function's subscription has no backlog left, and the status
// and metric tell which path ran.
func TestFunctionAtLeastOnceKill9InProcess(t *testing.T) {
	skipOnEtcd(t)
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	c := newClient(t, p.brokerURL)
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	const n = 3000
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("m%05d", i)
	}
	produceBatched(t, c, in, values)
	cfg := functionConfig(t, "alo", in, out)
	createFunctionHTTP(t, p.webURL, cfg, moduleFile(t, "../examples/functions/identity"))
	outCons := subscribeEarliest(t, c, out)
	receiveN(t, outCons, 300, 60*time.Second) // part of the way
	running, inProcess := functionStatusInProcess(t, p.webURL, "alo")
	if !running || inProcess == functionClientPath {
		t.Fatalf("status: running %v, inProcess %v (client path forced: %v)", running, inProcess, functionClientPath)
	}
	want := "1"
	if functionClientPath {
		want = "0"
	}
	metrics := expectHTTP(t, "GET", p.webURL+"/metrics", "", 200)
	if !strings.Contains(metrics, `mb_function_inprocess{function="alo",instance_id="0",namespace="default",tenant="public"} `+want) {
		t.Fatalf("mb_function_inprocess is not %s for the instance", want)
	}
	p.kill(t)
	c.Close()
	p = startProc(t, dir, p.brokerPort, p.httpPort)
	c = newClient(t, p.brokerURL)
	outCons = subscribeEarliest(t, c, out)
	seen := map[string]int{}
	deadline := time.Now().Add(120 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := outCons.Receive(ctx)
		cancel()
		if err != nil {
			continue
		}
		seen[string(m.Payload())]++
		outCons.Ack(m)
	}
	if len(seen) != n {
		t.Fatalf("%d of %d inputs in the output after kill -9", len(seen), n)
	}
	// The function's subscription is the broker's own: its backlog is
	// what Pulsar shows, and empties once every input is acknowledged.
	statsURL := p.webURL + "/admin/v2/persistent/public/default/" + strings.TrimPrefix(in, "persistent://public/default/") + "/stats"
	sub := "public/default/alo"
	eventually(t, "the function's subscription has no backlog", func() bool {
		resp, err := http.Get(statsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var st struct {
			Subscriptions map[string]struct {
				MsgBacklog int64 `json:"msgBacklog"`
				Consumers  []struct {
					ConsumerName string `json:"consumerName"`
				} `json:"consumers"`
			} `json:"subscriptions"`
		}
		if jsonUnmarshal(body, &st) != nil {
			return false
		}
		s, ok := st.Subscriptions[sub]
		return ok && s.MsgBacklog == 0 && len(s.Consumers) == 1
	})
}
