package pebbledb

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// checkpointLayout names checkpoint directories: UTC, sortable, no colons.
const checkpointLayout = "20060102T150405.000Z"

const tmpPrefix = ".tmp-"

// Checkpoint writes a copy of the database, WAL flushed, into
// root/<UTC time>/ and then removes all but the newest retain checkpoints
// under root (retain <= 0 keeps all). It returns the new checkpoint's path.
// A checkpoint appears under its final name only once complete.
func (d *DB) Checkpoint(root string, retain int, now time.Time) (string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return "", fmt.Errorf("checkpoint %s store: closed", d.store)
	}
	if err := d.fs.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	name := now.UTC().Format(checkpointLayout)
	final := d.fs.PathJoin(root, name)
	if _, err := d.fs.Stat(final); err == nil {
		return "", fmt.Errorf("checkpoint %s exists", final)
	}
	tmp := d.fs.PathJoin(root, tmpPrefix+name)
	if err := d.fs.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := d.DB.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		d.fs.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s store: %w", d.store, err)
	}
	if err := d.fs.Rename(tmp, final); err != nil {
		d.fs.RemoveAll(tmp)
		return "", err
	}
	if err := syncDir(d.fs, root); err != nil {
		return "", err
	}
	names, err := d.fs.List(root)
	if err != nil {
		return final, err
	}
	var kept []string
	for _, n := range names {
		if strings.HasPrefix(n, tmpPrefix) && n != tmpPrefix+name {
			d.fs.RemoveAll(d.fs.PathJoin(root, n)) // left by a crash mid-checkpoint
		} else if _, ok := CheckpointTime(n); ok {
			kept = append(kept, n)
		}
	}
	sort.Strings(kept)
	for retain > 0 && len(kept) > retain {
		if err := d.fs.RemoveAll(d.fs.PathJoin(root, kept[0])); err != nil {
			return final, fmt.Errorf("remove old checkpoint: %w", err)
		}
		kept = kept[1:]
	}
	return final, nil
}

// CheckpointTime parses a checkpoint directory's name.
func CheckpointTime(name string) (time.Time, bool) {
	t, err := time.Parse(checkpointLayout, name)
	return t, err == nil
}

// Checkpoints lists the complete checkpoints under root, oldest first, as
// paths. A missing root has none.
func Checkpoints(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if _, ok := CheckpointTime(e.Name()); ok && e.IsDir() {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
