package local

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/messagebus/messagebus/internal/pebbledb"
)

// registry is the Pebble database under Dir/index holding the small,
// mutable state: ledger names and ids, trim points and cursor states. Every
// write is synced. Keys:
//
//	"v"                        journal format version (uint16, big endian)
//	"s"                        journal salt (uint64, big endian; record.go)
//	"n"                        last ledger id handed out (uint64, big endian)
//	"l/" name                  ledger id of a live ledger
//	"d/" id(8, big endian)     a deleted ledger (tombstone)
//	"t/" id(8, big endian)     trim point: the ledger's FirstEntryID (uvarint)
//	"h/" id(8, big endian)     high-water mark: an entry id above every one
//	                           published before the last cursor flush (uvarint)
//	"r/" id(8, big endian)     entry ids refused (disk full) and never reused:
//	                           uvarint pairs from, count
//	"c/" id(8, big endian) name  cursor state (ledger.CursorState encoding)
//
// A ledger id is never handed out twice (recovery also raises "n" above
// every id the journal holds). The journal records of a deleted ledger are
// recognised by its tombstone, kept while the journal holds any of them; a
// record of an id that is neither live nor deleted means the index lost
// something: it is quarantined, never given to another ledger.
type registry struct {
	db     *pebbledb.DB
	lastID int64 // guarded by Store.opMu after open
}

var (
	keyVersion    = []byte("v")
	keySalt       = []byte("s")
	keyLastID     = []byte("n")
	prefixDeleted = []byte("d/")
	prefixLedger  = []byte("l/")
	prefixTrim    = []byte("t/")
	prefixNext    = []byte("h/")
	prefixRefused = []byte("r/")
	prefixCursors = []byte("c/")
)

func ledgerKey(name string) []byte { return append(bytes.Clone(prefixLedger), name...) }

func idKey(prefix []byte, id int64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(id))
}

func cursorKey(id int64, name string) []byte { return append(idKey(prefixCursors, id), name...) }

// registryState is what the registry holds, as loaded at open.
type registryState struct {
	version int    // 0: a new index, or one written before format 2
	salt    uint64 // 0: none recorded
	ledgers map[string]int64
	deleted map[int64]bool
	trims   map[int64]int64
	nexts   map[int64]int64
	refused map[int64][]idRange
	cursors map[int64]map[string][]byte
}

func openRegistry(dir string, log *slog.Logger, readOnly bool) (*registry, *registryState, error) {
	db, err := pebbledb.Open(dir, pebbledb.Options{Store: "index", Logger: log, ReadOnly: readOnly})
	if err != nil {
		return nil, nil, err
	}
	r := &registry{db: db}
	var st *registryState
	err = db.Guard(func() (err error) {
		st, err = r.load()
		return err
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load index %s: %w", dir, err)
	}
	return r, st, nil
}

func (r *registry) load() (*registryState, error) {
	st := &registryState{ledgers: map[string]int64{}, deleted: map[int64]bool{}, trims: map[int64]int64{}, nexts: map[int64]int64{}, refused: map[int64][]idRange{}, cursors: map[int64]map[string][]byte{}}
	it, err := r.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		switch {
		case bytes.Equal(k, keyVersion) && len(v) == 2:
			st.version = int(binary.BigEndian.Uint16(v))
		case bytes.Equal(k, keySalt) && len(v) == 8:
			st.salt = binary.BigEndian.Uint64(v)
		case bytes.HasPrefix(k, prefixDeleted) && len(k) == len(prefixDeleted)+8:
			st.deleted[int64(binary.BigEndian.Uint64(k[len(prefixDeleted):]))] = true
		case bytes.Equal(k, keyLastID) && len(v) == 8:
			r.lastID = int64(binary.BigEndian.Uint64(v))
		case bytes.HasPrefix(k, prefixLedger) && len(v) == 8:
			st.ledgers[string(k[len(prefixLedger):])] = int64(binary.BigEndian.Uint64(v))
		case bytes.HasPrefix(k, prefixTrim) && len(k) == len(prefixTrim)+8:
			first, n := binary.Uvarint(v)
			if n <= 0 {
				return nil, fmt.Errorf("bad trim point %q", k)
			}
			st.trims[int64(binary.BigEndian.Uint64(k[len(prefixTrim):]))] = int64(first)
		case bytes.HasPrefix(k, prefixNext) && len(k) == len(prefixNext)+8:
			next, n := binary.Uvarint(v)
			if n <= 0 {
				return nil, fmt.Errorf("bad high-water mark %q", k)
			}
			st.nexts[int64(binary.BigEndian.Uint64(k[len(prefixNext):]))] = int64(next)
		case bytes.HasPrefix(k, prefixRefused) && len(k) == len(prefixRefused)+8:
			rs, err := decodeRanges(v)
			if err != nil {
				return nil, fmt.Errorf("bad refused ids %q: %w", k, err)
			}
			st.refused[int64(binary.BigEndian.Uint64(k[len(prefixRefused):]))] = rs
		case bytes.HasPrefix(k, prefixCursors) && len(k) >= len(prefixCursors)+8:
			id := int64(binary.BigEndian.Uint64(k[len(prefixCursors):]))
			if st.cursors[id] == nil {
				st.cursors[id] = map[string][]byte{}
			}
			st.cursors[id][string(k[len(prefixCursors)+8:])] = bytes.Clone(v)
		default:
			return nil, fmt.Errorf("unknown key %q", k)
		}
	}
	return st, it.Error()
}

// create registers a ledger under a new id.
func (r *registry) create(name string) (int64, error) {
	id := r.lastID + 1
	b := r.db.NewBatch()
	defer b.Close()
	b.Set(keyLastID, binary.BigEndian.AppendUint64(nil, uint64(id)), nil)
	b.Set(ledgerKey(name), binary.BigEndian.AppendUint64(nil, uint64(id)), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("register ledger %q: %w", name, err)
	}
	r.lastID = id
	return id, nil
}

// setFormat records the journal's format version and salt, and raises the
// last ledger id handed out to at least lastID.
func (r *registry) setFormat(salt uint64, lastID int64) error {
	b := r.db.NewBatch()
	defer b.Close()
	b.Set(keyVersion, binary.BigEndian.AppendUint16(nil, formatVersion), nil)
	b.Set(keySalt, binary.BigEndian.AppendUint64(nil, salt), nil)
	if lastID > r.lastID {
		b.Set(keyLastID, binary.BigEndian.AppendUint64(nil, uint64(lastID)), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("record journal format: %w", err)
	}
	r.lastID = max(r.lastID, lastID)
	return nil
}

// dropTombstones forgets deleted ledgers the journal holds no record of.
func (r *registry) dropTombstones(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	b := r.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		b.Delete(idKey(prefixDeleted, id), nil)
	}
	return b.Commit(pebble.Sync)
}

// remove forgets a ledger, its trim point and its cursors, and leaves a
// tombstone: its records in the journal are ignored, not quarantined.
func (r *registry) remove(name string, id int64) error {
	b := r.db.NewBatch()
	defer b.Close()
	b.Set(idKey(prefixDeleted, id), nil, nil)
	b.Delete(ledgerKey(name), nil)
	b.Delete(idKey(prefixTrim, id), nil)
	b.Delete(idKey(prefixNext, id), nil)
	b.Delete(idKey(prefixRefused, id), nil)
	b.DeleteRange(idKey(prefixCursors, id), idKey(prefixCursors, id+1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("delete ledger %q: %w", name, err)
	}
	return nil
}

func (r *registry) deleteCursor(id int64, name string) error {
	if err := r.db.Delete(cursorKey(id, name), pebble.Sync); err != nil {
		return fmt.Errorf("delete cursor %q: %w", name, err)
	}
	return nil
}

// stateBatch collects cursor states and trim points for one synced write.
type stateBatch struct{ b *pebble.Batch }

func (r *registry) newBatch() stateBatch { return stateBatch{r.db.NewBatch()} }

func (s stateBatch) cursor(id int64, name string, state []byte) {
	s.b.Set(cursorKey(id, name), state, nil)
}

func (s stateBatch) trim(id, first int64) {
	s.b.Set(idKey(prefixTrim, id), binary.AppendUvarint(nil, uint64(first)), nil)
}

func (s stateBatch) next(id, next int64) {
	s.b.Set(idKey(prefixNext, id), binary.AppendUvarint(nil, uint64(next)), nil)
}

func (s stateBatch) refused(id int64, rs []idRange) {
	if len(rs) == 0 {
		s.b.Delete(idKey(prefixRefused, id), nil)
		return
	}
	var v []byte
	for _, r := range rs {
		v = binary.AppendUvarint(v, uint64(r.from))
		v = binary.AppendUvarint(v, uint64(r.to-r.from))
	}
	s.b.Set(idKey(prefixRefused, id), v, nil)
}

func decodeRanges(v []byte) ([]idRange, error) {
	var out []idRange
	for len(v) > 0 {
		from, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, errors.New("bad varint")
		}
		v = v[n:]
		count, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, errors.New("bad varint")
		}
		v = v[n:]
		out = append(out, idRange{int64(from), int64(from + count)})
	}
	return out, nil
}

func (s stateBatch) commit() error {
	defer s.b.Close()
	if s.b.Empty() {
		return nil
	}
	return s.b.Commit(pebble.Sync)
}

func (r *registry) close() error { return r.db.Close() }
