package pebbledb

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const nKeys = 40

// chunks returns the offsets of the valid chunks of the WAL at path.
func chunks(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	num := uint32(walNum(filepath.Base(path)))
	var offs []int
	for off := 0; off < len(data); {
		_, size, trailer, bad := chunkAt(data, off, num, true)
		if bad != "" || trailer {
			break
		}
		offs = append(offs, off)
		off += size
	}
	return offs
}

// allOrDamage fails unless opening dir reports damage or finds every key.
func allOrDamage(t *testing.T, dir, what string) bool {
	t.Helper()
	keys, err := present(t, dir)
	if err != nil {
		mustBeDamage(t, err, what)
		return true
	}
	if len(keys) != nKeys {
		t.Fatalf("%s: silent loss: %d of %d keys, no error", what, len(keys), nKeys)
	}
	return false
}

// Single bit flips anywhere in any file of a cleanly closed store: a clear
// error or every key, never a panic or a silent loss.
func TestBitFlipsFailClosed(t *testing.T) {
	base := t.TempDir()
	fill(t, base, nKeys, nKeys/2)
	for _, kind := range []string{"wal", "manifest", "options", "sst"} {
		names := files(t, base, kind)
		if len(names) == 0 {
			t.Fatalf("no %s file", kind)
		}
		damage := 0
		for seed := uint64(1); seed <= 12; seed++ {
			rng := rand.New(rand.NewPCG(seed, 7))
			name := names[rng.IntN(len(names))]
			dir := filepath.Join(t.TempDir(), "db")
			copyDir(t, base, dir)
			path := filepath.Join(dir, name)
			off := rng.Int64N(size(t, path))
			flipBit(t, path, off, uint(rng.IntN(8)))
			if allOrDamage(t, dir, kind+" "+name) {
				damage++
			}
		}
		t.Logf("%s: %d of 12 flips reported as damage, the rest harmless", kind, damage)
		if kind != "options" && damage == 0 {
			t.Errorf("%s: no flip detected", kind)
		}
	}
}

// The reviewer's cases: one bit in the WAL before and after some records,
// in the MANIFEST, in an .sst.
func TestReviewerCases(t *testing.T) {
	base := t.TempDir()
	fill(t, base, nKeys, nKeys/2)
	wal := files(t, base, "wal")[0]
	offs := chunks(t, filepath.Join(base, wal))
	if len(offs) < 5 {
		t.Fatalf("WAL %s has %d chunks", wal, len(offs))
	}
	cases := map[string]struct {
		file string
		off  int64
	}{
		"wal first record":  {wal, int64(offs[0] + 20)},
		"wal after records": {wal, int64(offs[3] + 15)},
		"wal last record":   {wal, int64(offs[len(offs)-1] + 12)},
		"manifest":          {files(t, base, "manifest")[0], 10},
		"sst":               {files(t, base, "sst")[0], 100},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			copyDir(t, base, dir)
			flipBit(t, filepath.Join(dir, c.file), c.off, 2)
			_, err := present(t, dir)
			mustBeDamage(t, err, name)
			if !strings.Contains(err.Error(), c.file) {
				t.Fatalf("error does not name %s: %v", c.file, err)
			}
		})
	}
}

// crashImage writes n synced keys and copies the store while it is open:
// what a power cut would leave (no clean-close marker, no WAL trailer).
func crashImage(t *testing.T, n int) string {
	t.Helper()
	live := t.TempDir()
	db, err := openTest(t, live)
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, 0, n)
	img := filepath.Join(t.TempDir(), "img")
	copyDir(t, live, img)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

// A torn tail after a crash is the write in flight: the store opens with
// every record before it, wherever the WAL was cut.
func TestTornTailAfterCrashOpens(t *testing.T) {
	img := crashImage(t, nKeys)
	wal := files(t, img, "wal")[0]
	full := size(t, filepath.Join(img, wal))
	offs := chunks(t, filepath.Join(img, wal))
	for cut := int64(0); cut <= full; cut += 5 + cut%31 {
		dir := filepath.Join(t.TempDir(), "db")
		copyDir(t, img, dir)
		if err := os.Truncate(filepath.Join(dir, wal), cut); err != nil {
			t.Fatal(err)
		}
		keys, err := present(t, dir)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		whole := 0 // records wholly before the cut
		for i, o := range offs {
			end := full
			if i+1 < len(offs) {
				end = int64(offs[i+1])
			}
			if o >= 0 && end <= cut {
				whole++
			}
		}
		if len(keys) < whole || !slices.Equal(keys, seq(len(keys))) {
			t.Fatalf("cut at %d: keys %v, want the first %d at least", cut, keys, whole)
		}
	}
	// The whole WAL: everything.
	if keys, err := present(t, img); err != nil || len(keys) != nKeys {
		t.Fatalf("crash image: %d keys, %v", len(keys), err)
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// After a crash, a damaged record followed by later synced records is
// damage, not a torn tail.
func TestFlipBeforeLaterRecordsAfterCrash(t *testing.T) {
	img := crashImage(t, nKeys)
	wal := files(t, img, "wal")[0]
	offs := chunks(t, filepath.Join(img, wal))
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		i := rng.IntN(len(offs) - 1) // not the last record
		end := offs[i+1]
		off := int64(offs[i] + rng.IntN(end-offs[i]))
		dir := filepath.Join(t.TempDir(), "db")
		copyDir(t, img, dir)
		flipBit(t, filepath.Join(dir, wal), off, uint(rng.IntN(8)))
		_, err := present(t, dir)
		mustBeDamage(t, err, fmt.Sprintf("flip at %d in record %d", off, i))
	}
}

// After a clean close, truncating the WAL or the MANIFEST, even at a record
// boundary, is damage.
func TestTruncationAfterCleanClose(t *testing.T) {
	base := t.TempDir()
	fill(t, base, nKeys, 0)
	for _, kind := range []string{"wal", "manifest"} {
		name := files(t, base, kind)[0]
		full := size(t, filepath.Join(base, name))
		for _, cut := range []int64{full - 1, full - 11, full / 2} {
			dir := filepath.Join(t.TempDir(), "db")
			copyDir(t, base, dir)
			if err := os.Truncate(filepath.Join(dir, name), cut); err != nil {
				t.Fatal(err)
			}
			_, err := present(t, dir)
			mustBeDamage(t, err, kind+" truncated")
		}
	}
}

func TestCheckpointsRetainedAndOpen(t *testing.T) {
	dir := t.TempDir()
	db, err := openTest(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "checkpoints", "test")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var made []string
	for i := range 5 {
		write(t, db, i*8, i*8+8)
		p, err := db.Checkpoint(root, 3, now.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Checkpoints(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, made[2:]) {
		t.Fatalf("checkpoints %v, want %v", got, made[2:])
	}
	if filepath.Base(got[2]) != "20260102T030805.000Z" {
		t.Fatalf("name %s", filepath.Base(got[2]))
	}
	// The newest holds every key; it is a copy, so damage to the store's
	// tables does not reach it.
	for _, sst := range files(t, dir, "sst") {
		flipBit(t, filepath.Join(dir, sst), 50, 1)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	copyDir(t, got[2], restored)
	if keys, err := present(t, restored); err != nil || len(keys) != nKeys {
		t.Fatalf("checkpoint: %d keys, %v", len(keys), err)
	}
}
