package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFunctionProcessRuntime: an executable using the Pulsar Go client is
// run by the worker with its settings in the environment and a client
// config file; its output reaches the function's log topic, it is
// restarted when it exits, and delete stops it and removes its
// subscription.
func TestFunctionProcessRuntime(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "procfn")
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", exe, "./testdata/procfn")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build procfn: %v\n%s", err, out)
	}
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	logTopic := in + "-log"
	outCons := subscribeEarliest(t, c, out)
	logCons := subscribeEarliest(t, c, logTopic)
	produceStrings(t, c, in, "a", "crash", "b")

	pidFile := filepath.Join(dir, "pid")
	cfg := functionConfig(t, "proc", in, out)
	cfg.Runtime = "PROCESS"
	cfg.LogTopic = logTopic
	cfg.UserConfig = map[string]interface{}{"pidFile": pidFile}
	createFunctionHTTP(t, s.WebURL(), cfg, exe)

	// At least once: "a" may come twice when the crash lost its ack.
	seen := map[string]bool{}
	for !seen["A"] || !seen["B"] {
		m := receiveN(t, outCons, 1, 60*time.Second)[0]
		if p := string(m.Payload()); p != "A" && p != "B" {
			t.Fatalf("output %q", p)
		}
		seen[string(m.Payload())] = true
	}
	// stdout reached the log topic (twice: started again after the crash).
	started := 0
	for started < 2 {
		m := receiveN(t, logCons, 1, 30*time.Second)[0]
		if strings.Contains(string(m.Payload()), "procfn started instance=0 conf-has-broker=true") {
			started++
		}
	}
	adminEventually(t, "status shows the restart", func() bool {
		st, err := admin.Functions().GetFunctionStatus("public", "default", "proc")
		return err == nil && st.NumRunning == 1 && st.Instances[0].Status.NumRestarts >= 1 &&
			st.Instances[0].Status.NumSystemExceptions >= 1
	})
	// trigger is for WebAssembly functions.
	if _, err := admin.Functions().TriggerFunction("public", "default", "proc", "", "x", ""); err == nil {
		t.Fatal("trigger of a process function succeeded")
	}

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	if err := admin.Functions().DeleteFunction("public", "default", "proc"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still runs after delete", pid)
	}
	st, err := admin.Topics().GetStats(topicName(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Subscriptions["public/default/proc"]; ok {
		t.Fatal("subscription left after delete")
	}
}
