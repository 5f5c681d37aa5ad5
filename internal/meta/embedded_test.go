package meta_test

import (
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/metatest"
)

// TestEmbeddedConformance runs the meta.Store conformance suite on the
// embedded store.
func TestEmbeddedConformance(t *testing.T) {
	metatest.Run(t, func(t *testing.T) metatest.Opener {
		dir := t.TempDir()
		return func(t *testing.T) meta.Store {
			s, err := meta.OpenEmbedded(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
