package pebbledb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// markerName is the file DB.Close leaves in a store's directory. Pebble
// ignores files it does not know; checkpoints do not copy it.
const markerName = "MB-CLOSED"

// closeMarker records the current MANIFEST and the newest WAL as a clean
// close left them: until the next open nothing may change them.
type closeMarker struct {
	Manifest     string `json:"manifest"`
	ManifestSize int64  `json:"manifest_size"`
	WAL          string `json:"wal,omitempty"`
	WALSize      int64  `json:"wal_size,omitempty"`
}

func readMarker(fs vfs.FS, dir string) (*closeMarker, error) {
	f, err := fs.Open(fs.PathJoin(dir, markerName))
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var m closeMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", markerName, err)
	}
	return &m, nil
}

// writeMarker records the closed store's files, synced.
func writeMarker(fs vfs.FS, dir string) error {
	desc, err := pebble.Peek(dir, fs)
	if err != nil || !desc.Exists {
		return err
	}
	m := closeMarker{Manifest: fs.PathBase(desc.ManifestFilename)}
	if m.ManifestSize, err = fileSize(fs, fs.PathJoin(dir, m.Manifest)); err != nil {
		return err
	}
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	if m.WAL, _ = newestWAL(names); m.WAL != "" {
		if m.WALSize, err = fileSize(fs, fs.PathJoin(dir, m.WAL)); err != nil {
			return err
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := fs.PathJoin(dir, markerName+".tmp")
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, fs.PathJoin(dir, markerName)); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// removeMarker makes the store "in use": from here on a crash may leave a
// torn tail, which the next open must accept.
func removeMarker(fs vfs.FS, dir string) error {
	if err := fs.Remove(fs.PathJoin(dir, markerName)); err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	return syncDir(fs, dir)
}

func fileSize(fs vfs.FS, path string) (int64, error) {
	st, err := fs.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func isNotExist(err error) bool { return errors.Is(err, iofs.ErrNotExist) }
