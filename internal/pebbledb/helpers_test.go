package pebbledb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func key(i int) []byte   { return fmt.Appendf(nil, "key-%05d", i) }
func value(i int) []byte { return bytes.Repeat(fmt.Appendf(nil, "value-%05d;", i), 1+i%7) }

func openTest(t testing.TB, dir string) (*DB, error) {
	t.Helper()
	return Open(dir, Options{Store: "test", Logger: quiet()})
}

// write puts keys [from, to) one synced batch each.
func write(t testing.TB, db *DB, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := db.Set(key(i), value(i), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
}

// fill creates a store in dir with n keys; flushAt > 0 flushes the memtable
// to an .sst after that many keys. It closes the store cleanly.
func fill(t testing.TB, dir string, n, flushAt int) {
	t.Helper()
	db, err := openTest(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if flushAt > 0 {
		write(t, db, 0, flushAt)
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
		write(t, db, flushAt, n)
	} else {
		write(t, db, 0, n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// present opens dir and returns the indexes of the keys it holds with the
// right value; a wrong value is an error.
func present(t testing.TB, dir string) (keys []int, err error) {
	t.Helper()
	db, err := openTest(t, dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.Guard(func() error {
		it, err := db.NewIter(nil)
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			var i int
			if _, err := fmt.Sscanf(string(it.Key()), "key-%05d", &i); err != nil {
				it.Close()
				return fmt.Errorf("unexpected key %q", it.Key())
			}
			if !bytes.Equal(it.Value(), value(i)) {
				it.Close()
				return fmt.Errorf("key %d: wrong value %q", i, it.Value())
			}
			keys = append(keys, i)
		}
		if err := it.Error(); err != nil {
			it.Close()
			return err
		}
		return it.Close()
	})
	return keys, err
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// files lists the names in dir matching a kind: "wal" (newest .log),
// "manifest" (current), "options", "sst".
func files(t testing.TB, dir, kind string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []string
	switch kind {
	case "wal":
		if n, _ := newestWAL(names); n != "" {
			out = append(out, n)
		}
	case "manifest":
		desc, err := pebble.Peek(dir, vfs.Default)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, filepath.Base(desc.ManifestFilename))
	default:
		for _, n := range names {
			if (kind == "options" && strings.HasPrefix(n, "OPTIONS-")) || (kind == "sst" && strings.HasSuffix(n, ".sst")) {
				out = append(out, n)
			}
		}
	}
	return out
}

func flipBit(t testing.TB, path string, off int64, bit uint) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1 << bit
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func size(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// mustBeDamage fails unless err is a DamagedError naming the store.
func mustBeDamage(t testing.TB, err error, what string) {
	t.Helper()
	var de *DamagedError
	if !errors.As(err, &de) {
		t.Fatalf("%s: want a DamagedError, got %v", what, err)
	}
	if !strings.Contains(err.Error(), "test store") {
		t.Fatalf("%s: error does not name the store: %v", what, err)
	}
	if strings.Contains(err.Error(), "goroutine ") {
		t.Fatalf("%s: error carries a trace: %v", what, err)
	}
}
