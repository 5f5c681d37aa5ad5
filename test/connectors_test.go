package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// Connectors through a real broker: managed with pulsaradmin (the
// multipart bodies pulsar-admin sends), plain HTTP JSON and mb connectors;
// data read and written with the Go client.

// waitFor polls cond (an observable state change with no event to wait
// on: a status counter or a file's length) until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestConnectorSourceAndSinkThroughBroker(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	cons := subscribeEarliest(t, c, topic)

	src := &utils.SourceConfig{Tenant: "public", Namespace: "default", Name: "gen", Archive: "builtin://data-generator",
		TopicName: topic, Configs: map[string]any{"count": 100}}
	if err := admin.Sources().CreateSource(src, ""); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, admin.Sources().CreateSource(src, ""), http.StatusConflict, "source already exists")
	msgs := receiveN(t, cons, 100, 20*time.Second)
	for i, m := range msgs {
		var v struct{ Seq int }
		if err := json.Unmarshal(m.Payload(), &v); err != nil || v.Seq != i || m.Key() != fmt.Sprint(i) {
			t.Fatalf("message %d: %s key %q", i, m.Payload(), m.Key())
		}
		cons.Ack(m)
	}
	waitFor(t, "source status numWritten 100", 10*time.Second, func() bool {
		st, err := admin.Sources().GetSourceStatus("public", "default", "gen")
		return err == nil && st.NumInstances == 1 && st.NumRunning == 1 && st.Instances[0].Status.NumWritten == 100 &&
			st.Instances[0].Status.NumReceivedFromSource == 100
	})
	got, err := admin.Sources().GetSource("public", "default", "gen")
	if err != nil || got.Archive != "builtin://data-generator" || got.TopicName != topic || got.Parallelism != 1 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if names, err := admin.Sources().ListSources("public", "default"); err != nil || len(names) != 1 || names[0] != "gen" {
		t.Fatalf("list: %v %v", names, err)
	}

	path := filepath.Join(t.TempDir(), "out.jsonl")
	sink := &utils.SinkConfig{Tenant: "public", Namespace: "default", Name: "file", Archive: "builtin://file",
		Inputs: []string{topic}, Configs: map[string]any{"path": path}}
	if err := admin.Sinks().CreateSink(sink, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "100 lines in the sink's file", 20*time.Second, func() bool { return len(fileLines(t, path)) == 100 })
	// The generator's records were batched by its producer: each line's
	// messageId still names one message (its batch index included).
	ids := map[any]bool{}
	for _, l := range fileLines(t, path) {
		ids[l["messageId"]] = true
	}
	if first := fileLines(t, path)[0]; len(ids) != 100 || first["value"] != `{"seq":0,"instance":0}` {
		t.Fatalf("%d distinct messageIds in 100 lines; first line %v", len(ids), first)
	}
	waitFor(t, "sink status numWrittenToSink 100", 10*time.Second, func() bool {
		st, err := admin.Sinks().GetSinkStatus("public", "default", "file")
		return err == nil && st.NumRunning == 1 && st.Instances[0].Status.NumWrittenToSink == 100
	})
	if err := admin.Sinks().StopSink("public", "default", "file"); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Sinks().GetSinkStatus("public", "default", "file")
	if err != nil || st.NumRunning != 0 || st.Instances[0].Status.Running {
		t.Fatalf("stopped sink status %+v %v", st, err)
	}
	produceStrings(t, c, topic, "x", "y")
	if err := admin.Sinks().StartSink("public", "default", "file"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "102 lines after start", 20*time.Second, func() bool { return len(fileLines(t, path)) == 102 })
	lines := fileLines(t, path)
	if lines[101]["value"] != "y" || lines[101]["key"] != "k-y" {
		t.Fatalf("last line %v", lines[101])
	}
	if err := admin.Sinks().RestartSinkWithID("public", "default", "file", 0); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, admin.Sinks().RestartSinkWithID("public", "default", "file", 3), http.StatusNotFound, "no instance 3")

	for _, kind := range []string{"sources", "sinks"} {
		resp, err := http.Get(s.WebURL() + "/admin/v3/" + kind + "/builtin" + kind)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var defs []map[string]any
		if err := json.Unmarshal(b, &defs); err != nil || len(defs) == 0 {
			t.Fatalf("builtin%s: %s %v", kind, b, err)
		}
	}

	if err := admin.Sinks().DeleteSink("public", "default", "file"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Sources().DeleteSource("public", "default", "gen"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Sources().GetSource("public", "default", "gen")
	expectStatus(t, err, http.StatusNotFound, "source does not exist")
}

func postJSON(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConnectorConfigErrorsAndSecrets(t *testing.T) {
	s := startServer(t, server.Options{})
	base := s.WebURL() + "/admin/v3/sources/public/default/"
	for _, tc := range []struct{ body, want string }{
		{`{"archive":"builtin://nope","topicName":"t"}`, `no built-in source of type \"nope\"`},
		{`{"archive":"builtin://data-generator","topicName":"t","configs":{"rate":1}}`, `unknown field \"rate\"`},
		{`{"archive":"builtin://data-generator"}`, "topicName is required"},
		{`{"archive":"builtin://data-generator","topicName":"t","secrets":{"token":"plain"}}`, "want a reference"},
		{`{"archive":"builtin://data-generator","topicName":"t","processingGuarantees":"EFFECTIVELY_ONCE"}`, "ATLEAST_ONCE"},
		{`{"name":"other","archive":"builtin://data-generator","topicName":"t"}`, "differs from the path"},
	} {
		code, body := postJSON(t, http.MethodPost, base+"bad", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 %q", tc.body, code, body, tc.want)
		}
	}
	code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/nons/x", `{"archive":"builtin://data-generator","topicName":"t"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "does not exist") {
		t.Errorf("missing namespace: %d %s", code, body)
	}
	// A secret reference is stored and shown as the reference.
	code, body = postJSON(t, http.MethodPost, base+"sec", `{"archive":"builtin://data-generator","topicName":"persistent://public/default/sec",
		"configs":{"count":1},"secrets":{"apiKey":"env:MB_CONNECTOR_TEST_KEY"}}`)
	if code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	resp, err := http.Get(base + "sec")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"apiKey":"env:MB_CONNECTOR_TEST_KEY"`) {
		t.Fatalf("get: %s", b)
	}
	// The variable is not set: the instance fails with a clear error and
	// keeps retrying.
	waitFor(t, "the status to show the missing secret", 10*time.Second, func() bool {
		resp, err := http.Get(base + "sec/0/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&st)
		return strings.Contains(st.Error, "MB_CONNECTOR_TEST_KEY is not set")
	})
	code, body = postJSON(t, http.MethodPut, base+"sec", `{"archive":"builtin://file"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "type cannot be changed") {
		t.Errorf("update type: %d %s", code, body)
	}
}

// TestConnectorSourceResumesAfterKill kills mb -9 while the data
// generator runs: after the restart every sequence number is on the topic
// (the checkpoint only covers records with receipts), duplicates allowed.
func TestConnectorSourceResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	topic := "persistent://public/default/resume"
	const n = 3000
	code, body := postJSON(t, http.MethodPost, p.webURL+"/admin/v3/sources/public/default/gen",
		fmt.Sprintf(`{"archive":"builtin://data-generator","topicName":%q,"configs":{"count":%d,"ratePerSecond":2000,"checkpointIntervalMs":50}}`, topic, n))
	if code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, body)
	}
	written := func(webURL string) int64 {
		resp, err := http.Get(webURL + "/admin/v3/sources/public/default/gen/0/status")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var st struct{ NumWritten int64 }
		json.NewDecoder(resp.Body).Decode(&st)
		return st.NumWritten
	}
	waitFor(t, "some records written", 20*time.Second, func() bool { return written(p.webURL) >= 500 })
	p.kill(t)
	p = startProc(t, dir, p.brokerPort, p.httpPort)
	c := newClient(t, p.brokerURL)
	cons := subscribeEarliest(t, c, topic)
	seen := map[int]bool{}
	total := 0
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d sequence numbers arrived (%d messages)", len(seen), n, total)
		}
		for _, m := range receiveN(t, cons, 1, 30*time.Second) {
			var v struct{ Seq int }
			if err := json.Unmarshal(m.Payload(), &v); err != nil {
				t.Fatal(err)
			}
			seen[v.Seq] = true
			total++
			cons.Ack(m)
		}
	}
	t.Logf("%d distinct records in %d messages (%d duplicates from the kill)", len(seen), total, total-len(seen))
}
