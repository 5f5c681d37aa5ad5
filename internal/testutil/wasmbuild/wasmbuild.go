// Package wasmbuild builds Go function modules (GOOS=wasip1 GOARCH=wasm,
// -buildmode=c-shared) for tests, with the Go toolchain that runs them.
package wasmbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string][]byte{}
)

// Build compiles the main package in dir (a path relative to the caller's
// package, or absolute) and returns the module's bytes. Results are kept
// for the life of the test binary.
func Build(tb testing.TB, dir string) []byte {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[abs]; ok {
		return b
	}
	out := filepath.Join(tb.TempDir(), "fn.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", dir, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	built[abs] = b
	return b
}
