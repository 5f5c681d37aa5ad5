package vfs

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFS(t *testing.T) {
	for name, fs := range map[string]FS{"os": Default, "mem": NewMem()} {
		t.Run(name, func(t *testing.T) { testFS(t, fs, t.TempDir()) })
	}
}

func testFS(t *testing.T, fs FS, root string) {
	dir := filepath.Join(root, "a", "b")
	if err := fs.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "f")
	f, err := fs.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, s := range []string{"hello ", "world"} {
		n, err := f.WriteAt([]byte(s), off)
		if err != nil {
			t.Fatal(err)
		}
		off += int64(n)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 6); err != nil || string(buf) != "world" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	if n, err := f.ReadAt(buf, 9); n != 2 || err != io.EOF {
		t.Fatalf("short ReadAt = %d, %v; want 2, EOF", n, err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("!"), 5); err != nil {
		t.Fatal(err)
	}
	if size, err := f.Size(); err != nil || size != 6 {
		t.Fatalf("Size = %d, %v", size, err)
	}
	// Overwriting in place keeps the size; writing past the end fills the
	// gap with zeros.
	if _, err := f.WriteAt([]byte("H"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 8); err != nil {
		t.Fatal(err)
	}
	grown := make([]byte, 9)
	if _, err := f.ReadAt(grown, 0); err != nil || !bytes.Equal(grown, []byte("Hello!\x00\x00x")) {
		t.Fatalf("after overwrite and gap: %q, %v", grown, err)
	}
	if err := f.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("h"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename(p, p+"2"); err != nil {
		t.Fatal(err)
	}
	g, err := fs.Open(p + "2")
	if err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 6)
	if _, err := g.ReadAt(all, 0); err != nil || !bytes.Equal(all, []byte("hello!")) {
		t.Fatalf("after reopen: %q, %v", all, err)
	}
	g.Close()
	if _, err := fs.Create(filepath.Join(dir, "e")); err != nil {
		t.Fatal(err)
	}
	names, err := fs.List(dir)
	if err != nil || !reflect.DeepEqual(names, []string{"e", "f2"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(p + "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(p + "2"); err == nil {
		t.Fatal("opened a removed file")
	}
}

// TestOSFileAdviseRandom: the operating system's files take the advice
// and read as before.
func TestOSFileAdviseRandom(t *testing.T) {
	name := t.TempDir() + "/f"
	f, err := Default.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	ra, ok := f.(RandomAccess)
	if !ok {
		t.Fatal("an OS file is not RandomAccess")
	}
	if err := ra.AdviseRandom(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if n, err := f.ReadAt(b, 0); n != 5 || string(b) != "hello" {
		t.Fatalf("read after advice: %q %v", b[:n], err)
	}
}
