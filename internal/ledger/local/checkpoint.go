package local

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CheckpointIndex copies the index (ledger names and ids, trim points,
// cursor states) into root/<UTC time>/ and keeps the newest retain
// checkpoints there; it returns the new one's path. The journal is not
// copied: a restored index serves the journal as it is then.
func (s *Store) CheckpointIndex(root string, retain int) (string, error) {
	return s.reg.db.Checkpoint(root, retain, time.Now())
}

// restoredIDGap is added to the last ledger id of a restored index: ledgers
// created after the checkpoint got ids the checkpoint does not know, and
// their records stay in the journal; a new ledger must never take one.
const restoredIDGap = 1 << 32

// PrepareRestoredIndex readies a copy of an index checkpoint in dir to
// replace a damaged index: it moves the id counter past any id the lost
// ledgers could have had.
func PrepareRestoredIndex(dir string, log *slog.Logger) error {
	r, _, err := openRegistry(dir, log, false)
	if err != nil {
		return err
	}
	id := r.lastID + restoredIDGap
	if err := r.db.Set(keyLastID, binary.BigEndian.AppendUint64(nil, uint64(id)), pebble.Sync); err != nil {
		r.close()
		return fmt.Errorf("restored index %s: %w", dir, err)
	}
	return r.close()
}
