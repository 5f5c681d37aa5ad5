package test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func putTenant(t *testing.T, webURL, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, webURL+"/admin/v2/tenants/"+name,
		strings.NewReader(`{"adminRoles":[],"allowedClusters":["standalone"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create tenant %s: %s", name, resp.Status)
	}
}

func tenants(t *testing.T, webURL string) string {
	t.Helper()
	resp, err := http.Get(webURL + "/admin/v2/tenants")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// newestWAL returns the path of the newest Pebble WAL in dir.
func newestWAL(t *testing.T, dir string) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		t.Fatalf("no WAL in %s", dir)
	}
	sort.Strings(logs)
	return logs[len(logs)-1]
}

// A bit flipped in the metadata store's WAL of a stopped broker: the broker
// refuses to start with one clear message (store, file, what to do) and no
// panic trace; mb restore-checkpoint brings it back with the state of the
// newest checkpoint.
func TestDamagedMetadataWALStopsStartup(t *testing.T) {
	skipOnEtcd(t)
	dataDir := t.TempDir()
	p := startProc(t, dataDir, 0, 0)
	putTenant(t, p.webURL, "before-checkpoint")
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The restart checkpoints the store with the first tenant; the second
	// one lives only in the WAL.
	p = startProc(t, dataDir, 0, 0)
	putTenant(t, p.webURL, "after-checkpoint")
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	wal := newestWAL(t, filepath.Join(dataDir, "meta"))
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 40 {
		t.Fatalf("WAL %s has %d bytes", wal, len(b))
	}
	b[30] ^= 0x10
	if err := os.WriteFile(wal, b, 0o644); err != nil {
		t.Fatal(err)
	}

	p = launchProc(t, dataDir, freePort(t), freePort(t), nil)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("mb kept running on a damaged metadata store")
	}
	out := p.stderr.String()
	t.Logf("mb output:\n%s", out)
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("exit code 0; output:\n%s", out)
	}
	for _, want := range []string{"metadata store", "is damaged", filepath.Base(wal), "mb restore-checkpoint --data-dir " + dataDir + " --store metadata"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"panic", "goroutine "} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}

	var restoreOut bytes.Buffer
	cmd := exec.Command(mbBinary, "restore-checkpoint", "--data-dir", dataDir, "--store", "metadata")
	cmd.Stdout, cmd.Stderr = &restoreOut, &restoreOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("restore-checkpoint: %v\n%s", err, restoreOut.String())
	}
	p = startProc(t, dataDir, 0, 0)
	got := tenants(t, p.webURL)
	if !strings.Contains(got, "before-checkpoint") {
		t.Fatalf("restored tenants %s lack the checkpointed one", got)
	}
	if strings.Contains(got, "after-checkpoint") {
		t.Fatalf("restored tenants %s have one created after the checkpoint", got)
	}
	aside, _ := filepath.Glob(filepath.Join(dataDir, "meta.damaged-*"))
	if len(aside) != 1 {
		t.Fatalf("damaged store not kept aside: %v", aside)
	}
}
