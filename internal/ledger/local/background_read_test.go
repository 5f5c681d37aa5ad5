package local

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
	"github.com/messagebus/messagebus/internal/pace"
)

// openTracker records the files opened through it once tracking is on,
// the largest read each got, and which were closed.
type openTracker struct {
	vfs.FS
	mu      sync.Mutex
	track   bool
	files   []*trackedFile
	advised int
}

type trackedFile struct {
	vfs.File
	t       *openTracker
	maxRead int
	reads   int
	closed  bool
}

func (o *openTracker) Open(name string) (vfs.File, error) {
	f, err := o.FS.Open(name)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.track {
		return f, nil
	}
	tf := &trackedFile{File: f, t: o}
	o.files = append(o.files, tf)
	return tf, nil
}

func (f *trackedFile) ReadAt(p []byte, off int64) (int, error) {
	f.t.mu.Lock()
	f.maxRead = max(f.maxRead, len(p))
	f.reads++
	f.t.mu.Unlock()
	return f.File.ReadAt(p, off)
}

func (f *trackedFile) AdviseRandom() error {
	f.t.mu.Lock()
	f.t.advised++
	f.t.mu.Unlock()
	return nil
}

func (f *trackedFile) Close() error {
	f.t.mu.Lock()
	f.closed = true
	f.t.mu.Unlock()
	return f.File.Close()
}

// TestBackgroundReadsInSteps: reads marked as background work (pace's
// context) return what foreground reads return, through a handle of each
// segment opened for them with readahead off, in reads of at most
// backgroundStep bytes, also for runs of records and single entries
// larger than that; recycling a segment and closing the store close those
// handles, and recycled segments read back right.
func TestBackgroundReadsInSteps(t *testing.T) {
	fs := &openTracker{FS: vfs.NewMem()}
	opts := Options{Dir: t.TempDir(), FS: fs, SegmentSize: 4 << 20, CacheBytes: 1000}
	s := openStore(t, opts)
	l := openLedger(t, s, "a")
	var want [][]byte
	appendN := func(n int) {
		for range n {
			size := 10 << 10
			if len(want)%50 == 7 {
				size = 600 << 10 // one entry over several steps
			}
			data := ledgertest.Payload("a", len(want), size)
			ledgertest.MustAppend(t, l, data)
			want = append(want, data)
		}
	}
	appendN(400) // about 10 MiB: three segments and the active one
	fs.mu.Lock()
	fs.track = true
	fs.mu.Unlock()
	bg := pace.NewContext(context.Background(), pace.CPU{})
	readAll := func(ctx context.Context, from int64) []ledger.Entry {
		var out []ledger.Entry
		var buf ledger.ReadBuf
		for id := from; id <= l.LastEntryID(); {
			es, err := l.(ledger.BufferReader).ReadInto(ctx, id, 1000, 1<<20, &buf)
			if err != nil {
				t.Fatalf("read from %d: %v", id, err)
			}
			for _, e := range es {
				out = append(out, ledger.Entry{ID: e.ID, Data: bytes.Clone(e.Data)})
			}
			id = es[len(es)-1].ID + 1
		}
		return out
	}
	check := func(got []ledger.Entry, from int64) {
		t.Helper()
		if len(got) != len(want)-int(from) {
			t.Fatalf("read %d entries from %d, want %d", len(got), from, len(want)-int(from))
		}
		for i, e := range got {
			if id := from + int64(i); e.ID != id || !bytes.Equal(e.Data, want[id]) {
				t.Fatalf("entry %d (id %d) differs", i, e.ID)
			}
		}
	}
	check(readAll(bg, 0), 0)
	fs.mu.Lock()
	opened, advised := len(fs.files), fs.advised
	for _, f := range fs.files {
		if f.maxRead > backgroundStep || f.reads == 0 {
			t.Errorf("a background handle got %d reads, the largest %d bytes; want some, none over %d", f.reads, f.maxRead, backgroundStep)
		}
	}
	fs.mu.Unlock()
	if opened < 3 || advised != opened {
		t.Fatalf("%d background handles opened, %d told not to read ahead; want one per segment read (at least 3), each told", opened, advised)
	}
	// Foreground reads go on through the segments' own handles.
	check(ledgertest.ReadAll(t, l, 0), 0)
	fs.mu.Lock()
	if len(fs.files) != opened {
		t.Errorf("foreground reads opened %d handles", len(fs.files)-opened)
	}
	fs.mu.Unlock()

	// Trim and collect: the segments read are recycled as spares (their
	// background handles closed first); what is written into them reads
	// back right, in the background too.
	l.Trim(300)
	s.collectSegments()
	appendN(400)
	check(readAll(bg, 300), 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.files {
		if !f.closed {
			t.Errorf("background handle %d left open", i)
		}
	}
}
