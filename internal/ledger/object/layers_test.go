package object_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayers keeps the ledger backends from reaching sideways or up: the
// object layer below them imports no backend, and the cluster ledger reaches
// the object store only through object.Objects.
func TestLayers(t *testing.T) {
	const mod = "github.com/messagebus/messagebus/internal/"
	forbidden := map[string][]string{
		"object":  {"ledger/tiered", "ledger/cluster", "ledger/local", "ledger/memory"},
		"cluster": {"ledger/tiered", "ledger/local", "objstore"},
		"tiered":  {"ledger/cluster"},
	}
	for dir, bad := range forbidden {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v (%d files)", dir, err, len(files))
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				for _, b := range bad {
					if strings.Trim(imp.Path.Value, `"`) == mod+b {
						t.Errorf("%s imports %s", f, b)
					}
				}
			}
		}
	}
}
