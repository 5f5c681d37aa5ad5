package test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFunctionsCLIFiveMinuteExample runs the README's "Functions" example
// with the mb binary: deploy with mb functions create, trigger, read the
// output with mb consume, and the other sub-commands.
func TestFunctionsCLIFiveMinuteExample(t *testing.T) {
	s := startFunctionsServer(t)
	module := moduleFile(t, "../examples/functions/upper")
	fn := func(args ...string) cliResult {
		t.Helper()
		r := runCLI(t, "", append([]string{"functions", "--admin-url", s.WebURL()}, args...)...)
		if r.code != 0 {
			t.Fatalf("mb functions %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	fn("create", "--tenant", "public", "--namespace", "default", "--name", "upper",
		"--inputs", "persistent://public/default/in", "--output", "persistent://public/default/out", "--wasm", module)
	if r := fn("trigger", "--tenant", "public", "--namespace", "default", "--name", "upper", "--trigger-value", "hello functions"); strings.TrimSpace(r.stdout) != "HELLO FUNCTIONS" {
		t.Fatalf("trigger printed %q", r.stdout)
	}
	r := runCLI(t, "", "consume", "--service-url", s.BrokerURL(), "persistent://public/default/out", "-s", "readme", "-n", "1", "--position", "earliest")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "HELLO FUNCTIONS" {
		t.Fatalf("consume: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := fn("list"); strings.TrimSpace(r.stdout) != "upper" {
		t.Fatalf("list printed %q", r.stdout)
	}
	r = fn("get", "--name", "upper", "-o", "json")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil || cfg["output"] != "persistent://public/default/out" || cfg["processingGuarantees"] != "ATLEAST_ONCE" {
		t.Fatalf("get: %v %s", err, r.stdout)
	}
	r = fn("status", "--name", "upper", "-o", "json")
	var st struct {
		NumInstances int `json:"numInstances"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.NumInstances != 1 {
		t.Fatalf("status: %v %s", err, r.stdout)
	}
	fn("update", "--name", "upper", "--parallelism", "2")
	r = fn("status", "--name", "upper", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.NumInstances != 2 {
		t.Fatalf("status after update: %v %s", err, r.stdout)
	}
	fn("putstate", "--name", "upper", "--state", `{"key":"greeting","stringValue":"hi"}`)
	if r := fn("state", "--name", "upper", "--key", "greeting", "-o", "json"); !strings.Contains(r.stdout, `"stringValue": "hi"`) {
		t.Fatalf("state printed %q", r.stdout)
	}
	fn("stop", "--name", "upper")
	fn("start", "--name", "upper", "--instance-id", "1")
	fn("delete", "--name", "upper")
	bad := runCLI(t, "", "functions", "--admin-url", s.WebURL(), "create", "--name", "x", "--inputs", "in", "--jar", "f.jar")
	if bad.code == 0 || !strings.Contains(bad.stderr, "--wasm") {
		t.Fatalf("--jar: exit %d %s", bad.code, bad.stderr)
	}
	bad = runCLI(t, "", "functions", "--admin-url", s.WebURL(), "get", "--name", "nope")
	if bad.code == 0 || !strings.Contains(bad.stderr, "function does not exist") {
		t.Fatalf("get missing: exit %d %s", bad.code, bad.stderr)
	}
}
