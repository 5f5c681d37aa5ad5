package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/internal/testutil/wasmbuild"
	"github.com/messagebus/messagebus/server"
)

// Functions run through a real broker: created with pulsaradmin (the
// multipart upload pulsar-admin sends), fed and read with the Go client.

// moduleFile builds a function module and writes it where pulsaradmin can
// upload it from.
func moduleFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(dir)+".wasm")
	if err := os.WriteFile(p, wasmbuild.Build(t, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startFunctionsServer(t *testing.T) *server.Server {
	return startServer(t, server.Options{Functions: server.Functions{CallTimeout: 500 * time.Millisecond, MaxMemory: 64 << 20}})
}

func functionConfig(t *testing.T, name, in, out string) *utils.FunctionConfig {
	return &utils.FunctionConfig{Tenant: "public", Namespace: "default", Name: name, Inputs: []string{in}, Output: out,
		Parallelism: 1, SubscriptionPosition: "Earliest", CleanupSubscription: true}
}

func produceStrings(t *testing.T, c pulsar.Client, topic string, values ...string) {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, v := range values {
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(v), Key: "k-" + v}); err != nil {
			t.Fatal(err)
		}
	}
}

func subscribeEarliest(t *testing.T, c pulsar.Client, topic string) pulsar.Consumer {
	t.Helper()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "reader",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Close)
	return cons
}

func TestFunctionIdentityThroughBroker(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	outCons := subscribeEarliest(t, c, out)
	produceStrings(t, c, in, "a", "b", "c")
	if err := admin.Functions().CreateFunc(functionConfig(t, "identity", in, out), moduleFile(t, "../examples/functions/identity")); err != nil {
		t.Fatal(err)
	}
	msgs := receiveN(t, outCons, 3, 60*time.Second)
	for i, want := range []string{"a", "b", "c"} {
		if string(msgs[i].Payload()) != want || msgs[i].Key() != "k-"+want {
			t.Fatalf("output %d: %q key %q", i, msgs[i].Payload(), msgs[i].Key())
		}
	}
	cfg, err := admin.Functions().GetFunction("public", "default", "identity")
	if err != nil || cfg.Output != out || cfg.ProcessingGuarantees != "ATLEAST_ONCE" || cfg.Parallelism != 1 {
		t.Fatalf("get: %+v, %v", cfg, err)
	}
	names, err := admin.Functions().GetFunctions("public", "default")
	if err != nil || len(names) != 1 || names[0] != "identity" {
		t.Fatalf("list: %v, %v", names, err)
	}
	adminEventually(t, "stats count the messages", func() bool {
		st, err := admin.Functions().GetFunctionStats("public", "default", "identity")
		return err == nil && st.ReceivedTotal == 3 && st.ProcessedSuccessfullyTotal == 3
	})
	status, err := admin.Functions().GetFunctionStatus("public", "default", "identity")
	if err != nil || status.NumInstances != 1 || status.NumRunning != 1 || status.Instances[0].Status.NumSuccessfullyProcessed != 3 {
		t.Fatalf("status: %+v, %v", status, err)
	}
	// trigger answers the output and publishes it.
	got := triggerHTTP(t, s.WebURL()+"/admin/v3/functions/public/default/identity/trigger", "hello", "")
	if got != "hello" {
		t.Fatalf("trigger answered %q", got)
	}
	if m := receiveN(t, outCons, 1, 10*time.Second); string(m[0].Payload()) != "hello" {
		t.Fatalf("triggered output %q", m[0].Payload())
	}
	if err := admin.Functions().CreateFunc(functionConfig(t, "identity", in, out), moduleFile(t, "../examples/functions/identity")); err == nil {
		t.Fatal("second create succeeded")
	} else {
		expectStatus(t, err, 409, "create twice")
	}
	if err := admin.Functions().DeleteFunction("public", "default", "identity"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Functions().GetFunction("public", "default", "identity")
	expectStatus(t, err, 404, "get after delete")
}

// triggerHTTP posts pulsar-admin's trigger form and returns the body.
func triggerHTTP(t *testing.T, url, value, topic string) string {
	t.Helper()
	return triggerWith(t, url, "", value, topic)
}

func triggerHTTPAuth(t *testing.T, url, token, value string) string {
	t.Helper()
	return triggerWith(t, url, token, value, "")
}

func triggerWith(t *testing.T, url, token, value, topic string) string {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("data", value)
	if topic != "" {
		w.WriteField("topic", topic)
	}
	w.Close()
	req, _ := http.NewRequest("POST", url, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("trigger: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func TestFunctionWordCountState(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	outCons := subscribeEarliest(t, c, out)
	if err := admin.Functions().CreateFunc(functionConfig(t, "wc", in, out), moduleFile(t, "../examples/functions/wordcount")); err != nil {
		t.Fatal(err)
	}
	produceStrings(t, c, in, "the cat", "the hat")
	receiveN(t, outCons, 4, 60*time.Second)
	st, err := admin.Functions().GetFunctionState("public", "default", "wc", "word/the")
	if err != nil || st.NumValue != 2 {
		t.Fatalf("state word/the: %+v, %v", st, err)
	}
	_, err = admin.Functions().GetFunctionState("public", "default", "wc", "word/dog")
	expectStatus(t, err, 404, "missing state key")
}

func TestFunctionFilterDeadLetters(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	outCons := subscribeEarliest(t, c, out)
	dlqCons := subscribeEarliest(t, c, in+"-DLQ")
	logCons := subscribeEarliest(t, c, in+"-log")
	cfg := functionConfig(t, "filter", in, out)
	cfg.LogTopic = in + "-log"
	if err := admin.Functions().CreateFunc(cfg, moduleFile(t, "../examples/functions/filter")); err != nil {
		t.Fatal(err)
	}
	produceStrings(t, c, in, `{"id":"1"}`, `garbage`, `{"id":"2"}`)
	good := receiveN(t, outCons, 2, 60*time.Second)
	bad := receiveN(t, dlqCons, 1, 10*time.Second)
	if string(good[1].Payload()) != `{"id":"2"}` || string(bad[0].Payload()) != "garbage" || bad[0].Properties()["error"] == "" {
		t.Fatalf("good %q, bad %q %v", good[1].Payload(), bad[0].Payload(), bad[0].Properties())
	}
	// The function's log lines reach its log topic, from a trigger too.
	if got := triggerHTTP(t, s.WebURL()+"/admin/v3/functions/public/default/filter/trigger", "junk", ""); got != "junk" {
		t.Fatalf("trigger answered %q", got)
	}
	logs := receiveN(t, logCons, 2, 10*time.Second)
	if !strings.Contains(string(logs[0].Payload()), "dead-lettering") || logs[0].Properties()["fqfn"] != "public/default/filter" {
		t.Fatalf("log line %q %v", logs[0].Payload(), logs[0].Properties())
	}
}

// TestHostileFunctionKeepsBrokerUp sends an endless loop, an unbounded
// allocation, a trap-like exit and a host call with a bad pointer through
// a function: each message is counted as failed, and the function and the
// broker go on with the next message.
func TestHostileFunctionKeepsBrokerUp(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	outCons := subscribeEarliest(t, c, out)
	cfg := functionConfig(t, "hostile", in, out)
	cfg.ProcessingGuarantees = "ATMOST_ONCE" // a failed message is not redelivered forever
	if err := admin.Functions().CreateFunc(cfg, moduleFile(t, "../internal/functions/wasm/testdata/hostile")); err != nil {
		t.Fatal(err)
	}
	produceStrings(t, c, in, "loop", "alloc", "exit", "badptr", "after")
	// Nacked messages come back; the function keeps failing them while
	// "after" gets through.
	m := receiveN(t, outCons, 1, 90*time.Second)
	if string(m[0].Payload()) != "after" {
		t.Fatalf("output %q", m[0].Payload())
	}
	adminEventually(t, "system exceptions counted", func() bool {
		st, err := admin.Functions().GetFunctionStats("public", "default", "hostile")
		return err == nil && st.SystemExceptionsTotal >= 4
	})
	resp, err := http.Get(s.WebURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"pulsar_function_system_exceptions_total{", "pulsar_function_received_total{", "mb_function_process_latency_seconds_bucket{"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestFunctionBadInput(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	mod := moduleFile(t, "../examples/functions/identity")
	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	os.WriteFile(garbage, []byte("not wasm"), 0o644)
	cases := []struct {
		name string
		cfg  *utils.FunctionConfig
		file string
	}{
		{"no inputs", &utils.FunctionConfig{Tenant: "public", Namespace: "default", Name: "f1"}, mod},
		{"bad module", functionConfig(t, "f2", "in", "out"), garbage},
		{"bad guarantee", func() *utils.FunctionConfig {
			c := functionConfig(t, "f3", "in", "out")
			c.ProcessingGuarantees = "SOMETIMES"
			return c
		}(), mod},
		{"no module", functionConfig(t, "f4", "in", "out"), ""},
		{"eo without dedup", func() *utils.FunctionConfig {
			c := functionConfig(t, "f5", "in", "out")
			c.ProcessingGuarantees = "EFFECTIVELY_ONCE"
			return c
		}(), mod},
	}
	for _, tc := range cases {
		err := admin.Functions().CreateFunc(tc.cfg, tc.file)
		expectStatus(t, err, 400, tc.name)
	}
	_, err := admin.Functions().GetFunctionStatus("public", "default", "nope")
	expectStatus(t, err, 404, "status of a missing function")
}

// TestFunctionEffectivelyOnceKill9 kills the broker while an
// EFFECTIVELY_ONCE function is half way through its input: after the
// restart every input is in the output exactly once.
func TestFunctionEffectivelyOnceKill9(t *testing.T) {
	skipOnEtcd(t)
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	c := newClient(t, p.brokerURL)
	expectHTTP(t, "POST", p.webURL+"/admin/v2/namespaces/public/default/deduplication", "true", 204)
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	const n = 3000
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("m%05d", i)
	}
	produceBatched(t, c, in, values)
	cfg := functionConfig(t, "eo", in, out)
	cfg.ProcessingGuarantees = "EFFECTIVELY_ONCE"
	createFunctionHTTP(t, p.webURL, cfg, moduleFile(t, "../examples/functions/identity"))
	outCons := subscribeEarliest(t, c, out)
	receiveN(t, outCons, 300, 60*time.Second) // part of the way
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
		t.Fatalf("%d of %d inputs in the output", len(seen), n)
	}
	for v, k := range seen {
		if k != 1 {
			t.Fatalf("%s published %d times", v, k)
		}
	}
	expectNoMessage(t, outCons, time.Second)
}

func produceBatched(t *testing.T, c pulsar.Client, topic string, values []string) {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errc := make(chan error, len(values))
	for _, v := range values {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(v)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errc <- err })
	}
	for range values {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// createFunctionHTTP sends pulsar-admin's multipart create.
func createFunctionHTTP(t *testing.T, webURL string, cfg *utils.FunctionConfig, module string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	js, _ := json.Marshal(cfg)
	w.WriteField("functionConfig", string(js))
	part, _ := w.CreateFormFile("data", filepath.Base(module))
	code, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(code)
	w.Close()
	url := fmt.Sprintf("%s/admin/v3/functions/%s/%s/%s", webURL, cfg.Tenant, cfg.Namespace, cfg.Name)
	resp, err := http.Post(url, w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 204 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create function: %d %s", resp.StatusCode, b)
	}
}

// TestFunctionStateAndCodeSurviveKill9: after kill -9 the function comes
// back with the node (its module is in the metadata store) and its counters
// hold every update made before the kill.
func TestFunctionStateAndCodeSurviveKill9(t *testing.T) {
	skipOnEtcd(t)
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	c := newClient(t, p.brokerURL)
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	cfg := functionConfig(t, "wc", in, out)
	createFunctionHTTP(t, p.webURL, cfg, moduleFile(t, "../examples/functions/wordcount"))
	outCons := subscribeEarliest(t, c, out)
	produceStrings(t, c, in, "apple", "apple pear")
	receiveN(t, outCons, 3, 60*time.Second) // each output follows its Incr
	p.kill(t)
	c.Close()
	p = startProc(t, dir, p.brokerPort, p.httpPort)
	c = newClient(t, p.brokerURL)
	state := func(key string) string { // "" while the key does not exist
		resp, err := http.Get(p.webURL + "/admin/v3/functions/public/default/wc/state/" + key)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return ""
		}
		return string(b)
	}
	if got := state("word%2Fapple"); !strings.Contains(got, `"numberValue":2`) {
		t.Fatalf("apple after kill -9: %s", got)
	}
	// Inputs whose acknowledgement the kill lost are processed again
	// (ATLEAST_ONCE): the count may go past 3, never below.
	produceStrings(t, c, in, "apple", "kiwi")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(state("word%2Fkiwi"), `"numberValue":1`) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted function did not count kiwi; apple: %s", state("word%2Fapple"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var sv struct {
		NumberValue int64 `json:"numberValue"`
	}
	if err := json.Unmarshal([]byte(state("word%2Fapple")), &sv); err != nil || sv.NumberValue < 3 {
		t.Fatalf("apple = %d after restart, %v", sv.NumberValue, err)
	}
}
