package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/pebbledb"
)

// storeInUse returns an error when a process holds the Pebble store in dir:
// the broker holds its LOCK file while it runs.
func storeInUse(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err == nil {
		l, err := vfs.Default.Lock(filepath.Join(dir, "LOCK"))
		if err != nil {
			return fmt.Errorf("%s is in use (is the broker running? stop it first): %w", dir, err)
		}
		l.Close()
	}
	return nil
}

// RestoreCheckpoint replaces a store of a stopped broker: it moves the
// store's directory aside to <dir>.damaged-<UTC time> and copies a
// checkpoint in (from, else the newest under <dataDir>/checkpoints/<store>/),
// checking that the copy opens whole. The delayed-delivery store has no
// checkpoints: it is only moved aside, and rebuilt from the subscriptions.
// It reports what it did to out.
func RestoreCheckpoint(dataDir, store, from string, out io.Writer) error {
	dir := storeDir(dataDir, store)
	if dir == "" {
		return fmt.Errorf("unknown store %q: metadata, index or delayed", store)
	}
	if _, err := os.Stat(dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := storeInUse(dir); err != nil {
		return err
	}
	if store != StoreDelayed && from == "" {
		cps, err := pebbledb.Checkpoints(checkpointRoot(dataDir, store))
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			return fmt.Errorf("no checkpoint of the %s store under %s", store, checkpointRoot(dataDir, store))
		}
		from = cps[len(cps)-1]
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var staged string
	if store != StoreDelayed {
		// Copy and check the checkpoint before touching the store.
		staged = dir + ".restoring"
		if err := os.RemoveAll(staged); err != nil {
			return err
		}
		if err := copyTree(from, staged); err != nil {
			return fmt.Errorf("copy checkpoint %s: %w", from, err)
		}
		var err error
		switch store {
		case StoreMetadata:
			var md *meta.Embedded
			if md, err = meta.OpenEmbedded(staged); err == nil {
				err = md.Close()
			}
		case StoreIndex:
			err = local.PrepareRestoredIndex(staged, quiet)
		}
		if err != nil {
			os.RemoveAll(staged)
			return fmt.Errorf("checkpoint %s does not open whole, try an older one with --from: %w", from, err)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		aside := fmt.Sprintf("%s.damaged-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(dir, aside); err != nil {
			return err
		}
		fmt.Fprintf(out, "moved %s to %s\n", dir, aside)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if staged != "" {
		if err := os.Rename(staged, dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "restored %s from %s\n", dir, from)
	} else {
		fmt.Fprintf(out, "the delayed-delivery index starts empty and is rebuilt as subscriptions are read\n")
	}
	return syncPath(filepath.Dir(dir))
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if d.Name() == "LOCK" {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		if err := o.Sync(); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

func syncPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
