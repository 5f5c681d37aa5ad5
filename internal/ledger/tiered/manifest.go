package tiered

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/messagebus/messagebus/internal/ledger/object"
)

// manifestVersion is the version of the manifest file format.
const manifestVersion = 1

// manifest lists the offloaded objects of one ledger, in entry-id order.
type manifest struct {
	Version  int    `json:"version"`
	Topic    string `json:"topic"`
	LedgerID int64  `json:"ledgerId"`
	// TrimmedBefore: entries below it were trimmed (retention): not served
	// even when an object still holds them.
	TrimmedBefore int64         `json:"trimmedBefore"`
	Objects       []objectEntry `json:"objects"`
	// Deleting lists objects whose entries were all trimmed: no longer
	// served, deleted from the store once the deletion lag has passed since
	// TrimmedAtMs (then dropped from this list).
	Deleting []objectEntry `json:"deleting,omitempty"`

	onDisk bool // the file exists (loaded or saved)
}

// objectEntry is one segment object: entries [First, Last] (some ids may
// be absent, lost locally before the offload).
type objectEntry struct {
	Key     string `json:"key"`
	First   int64  `json:"first"`
	Last    int64  `json:"last"`
	Size    int64  `json:"size"`    // bytes of the object
	Bytes   int64  `json:"bytes"`   // bytes of entry data in it
	Entries int64  `json:"entries"` // number of entries in it
	// OffloadedAtMs is when the manifest first listed it (Unix ms): the
	// deletion lag counts from there.
	OffloadedAtMs int64 `json:"offloadedAtMs"`
	// TrimmedAtMs is when retention trimmed all its entries (in Deleting).
	TrimmedAtMs int64 `json:"trimmedAtMs,omitempty"`
}

// ref names o for the block cache.
func (o objectEntry) ref() object.ObjectRef {
	return object.ObjectRef{Key: o.Key, Size: o.Size, First: o.First, Last: o.Last}
}

func manifestPath(dir string, ledgerID int64) string {
	return filepath.Join(dir, strconv.FormatInt(ledgerID, 10)+".json")
}

// loadManifest reads the manifest of a ledger; a missing one is empty.
func loadManifest(dir, topic string, ledgerID int64) (*manifest, error) {
	b, err := os.ReadFile(manifestPath(dir, ledgerID))
	if errors.Is(err, os.ErrNotExist) {
		return &manifest{Version: manifestVersion, Topic: topic, LedgerID: ledgerID}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tiered: read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("tiered: manifest %s: %w", manifestPath(dir, ledgerID), err)
	}
	if m.Version != manifestVersion || m.LedgerID != ledgerID {
		return nil, fmt.Errorf("tiered: manifest %s: version %d of ledger %d, want version %d of ledger %d",
			manifestPath(dir, ledgerID), m.Version, m.LedgerID, manifestVersion, ledgerID)
	}
	m.onDisk = true
	return &m, nil
}

// save replaces the manifest file atomically and durably: write a
// temporary file, fsync it, rename it over the old one, fsync the directory.
func (m *manifest) save(dir string) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	path := manifestPath(dir, m.LedgerID)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("tiered: write manifest: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("tiered: write manifest: %w", err)
	}
	m.onDisk = true
	return nil
}

func removeManifest(dir string, ledgerID int64) error {
	if err := os.Remove(manifestPath(dir, ledgerID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// listed reports whether key is in Objects or Deleting: an object the
// manifest still accounts for, not an orphan.
func (m *manifest) listed(key string) bool {
	for _, o := range m.Objects {
		if o.Key == key {
			return true
		}
	}
	for _, o := range m.Deleting {
		if o.Key == key {
			return true
		}
	}
	return false
}

// serves reports whether key is an object whose entries are served.
func (m *manifest) serves(key string) bool {
	for _, o := range m.Objects {
		if o.Key == key {
			return o.Last >= m.TrimmedBefore
		}
	}
	return false
}

// end is the id after the last offloaded entry (0 when none).
func (m *manifest) end() int64 {
	if len(m.Objects) == 0 {
		return 0
	}
	return m.Objects[len(m.Objects)-1].Last + 1
}
