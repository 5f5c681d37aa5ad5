package test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/server"
)

// TestConnectorsCLI runs the README's "Connectors" example with the mb
// binary: mb connectors sources|sinks create, list, get, status, stop,
// start, restart, delete; and the connector metrics.
func TestConnectorsCLI(t *testing.T) {
	s := startServer(t, server.Options{})
	run := func(kind string, args ...string) cliResult {
		t.Helper()
		r := runCLI(t, "", append([]string{"connectors", kind, "--admin-url", s.WebURL()}, args...)...)
		if r.code != 0 {
			t.Fatalf("mb connectors %s %s: exit %d\n%s", kind, strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	run("sources", "create", "--name", "gen", "--source-type", "data-generator",
		"--destination-topic-name", "persistent://public/default/gen", "--source-config", `{"count":10}`)
	run("sinks", "create", "--name", "file", "--sink-type", "file",
		"--inputs", "persistent://public/default/gen", "--sink-config", `{"path":"`+out+`"}`)
	waitFor(t, "10 lines in the file", 20*time.Second, func() bool { return len(fileLines(t, out)) == 10 })
	if r := run("sources", "list"); strings.TrimSpace(r.stdout) != "gen" {
		t.Fatalf("list printed %q", r.stdout)
	}
	r := run("sinks", "get", "--name", "file", "-o", "json")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil || cfg["archive"] != "builtin://file" {
		t.Fatalf("get: %v %s", err, r.stdout)
	}
	r = run("sinks", "status", "--name", "file", "-o", "json")
	var st struct {
		NumInstances int `json:"numInstances"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.NumInstances != 1 {
		t.Fatalf("status: %v %s", err, r.stdout)
	}
	run("sources", "update", "--name", "gen", "--source-config", `{"count":20}`)
	waitFor(t, "20 lines after the update", 20*time.Second, func() bool { return len(fileLines(t, out)) == 20 })
	run("sinks", "stop", "--name", "file")
	run("sinks", "start", "--name", "file", "--instance-id", "0")
	run("sinks", "restart", "--name", "file")
	if r := run("sources", "available-sources"); !strings.Contains(r.stdout, "data-generator") {
		t.Fatalf("available-sources printed %q", r.stdout)
	}
	resp, err := http.Get(s.WebURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `mb_connector_records_out_total{connector="public/default/gen",instance="0",kind="source",type="data-generator"} 20`) {
		t.Fatalf("metrics lack the source's count:\n%s", grepLines(string(b), "mb_connector"))
	}
	run("sinks", "delete", "--name", "file")
	run("sources", "delete", "--name", "gen")
	bad := runCLI(t, "", "connectors", "sources", "--admin-url", s.WebURL(), "get", "--name", "nope")
	if bad.code == 0 || !strings.Contains(bad.stderr, "source does not exist") {
		t.Fatalf("get missing: exit %d %s", bad.code, bad.stderr)
	}
}
