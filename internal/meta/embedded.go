package meta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/messagebus/messagebus/internal/pebbledb"
)

// Embedded is a Store kept in a local Pebble database. Writes are synced.
type Embedded struct {
	mu       sync.Mutex // serializes writes so compare-and-set is atomic
	db       *pebbledb.DB
	watchMu  sync.Mutex
	watchers map[*watcher]struct{}
	closed   bool
	rev      int64 // writes since open, under mu: the events' Revision
}

type watcher struct {
	prefix string
	ch     chan Event
	ctx    context.Context
}

// OpenEmbedded opens (creating when missing) the store in dir. Damage is
// returned as a *pebbledb.DamagedError; every record is read once, so a
// damaged table fails here and not at some later read.
func OpenEmbedded(dir string) (*Embedded, error) {
	db, err := pebbledb.Open(dir, pebbledb.Options{Store: "metadata", Logger: pebbleLog})
	if err != nil {
		return nil, err
	}
	if err := db.Guard(func() error { return readAll(db) }); err != nil {
		db.Close()
		return nil, err
	}
	return &Embedded{db: db, watchers: map[*watcher]struct{}{}}, nil
}

// pebbleLog drops Pebble's chatter but not its errors about the metadata store.
var pebbleLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// VerifyEmbedded checks the store in dir without changing anything (mb
// verify): its files are checked, it is opened read-only and every record is
// read once. It returns the number of records; damage is a
// *pebbledb.DamagedError. The store must exist and must not be open.
func VerifyEmbedded(dir string, log *slog.Logger) (records int, err error) {
	db, err := pebbledb.Open(dir, pebbledb.Options{Store: "metadata", Logger: log, ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	err = db.Guard(func() (err error) {
		records, err = countAll(db)
		return err
	})
	return records, err
}

func readAll(db *pebbledb.DB) error {
	_, err := countAll(db)
	return err
}

// countAll reads every record once and counts them.
func countAll(db *pebbledb.DB) (int, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		_ = it.Value()
		n++
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// Checkpoint copies the store into root/<UTC time>/ and keeps the newest
// retain checkpoints there; it returns the new one's path.
func (e *Embedded) Checkpoint(root string, retain int) (string, error) {
	return e.db.Checkpoint(root, retain, time.Now())
}

// A value is stored as [version u64][bytes].
func encodeValue(version int64, v []byte) []byte {
	b := make([]byte, 8+len(v))
	binary.BigEndian.PutUint64(b, uint64(version))
	copy(b[8:], v)
	return b
}

func decodeValue(key string, b []byte) KV {
	return KV{Key: key, Version: int64(binary.BigEndian.Uint64(b)), Value: append([]byte(nil), b[8:]...)}
}

// Get implements Store.
func (e *Embedded) Get(_ context.Context, key string) (KV, error) {
	v, closer, err := e.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return KV{}, ErrNotFound
	}
	if err != nil {
		return KV{}, fmt.Errorf("meta get %s: %w", key, err)
	}
	defer closer.Close()
	return decodeValue(key, v), nil
}

func (e *Embedded) currentVersion(key string) (int64, error) {
	kv, err := e.Get(context.Background(), key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return kv.Version, err
}

// Put implements Store.
func (e *Embedded) Put(_ context.Context, key string, value []byte, expected int64) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	cur, err := e.currentVersion(key)
	if err != nil {
		return 0, err
	}
	if expected != AnyVersion && expected != cur {
		return 0, fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, key, cur, expected)
	}
	next := cur + 1
	if err := e.db.Set([]byte(key), encodeValue(next, value), pebble.Sync); err != nil {
		return 0, fmt.Errorf("meta put %s: %w", key, err)
	}
	e.rev++
	e.notify(Event{Type: EventPut, KV: KV{Key: key, Value: value, Version: next}, Revision: e.rev})
	return next, nil
}

// Delete implements Store.
func (e *Embedded) Delete(_ context.Context, key string, expected int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	cur, err := e.currentVersion(key)
	if err != nil {
		return err
	}
	if cur == 0 {
		return ErrNotFound
	}
	if expected != AnyVersion && expected != cur {
		return fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, key, cur, expected)
	}
	if err := e.db.Delete([]byte(key), pebble.Sync); err != nil {
		return fmt.Errorf("meta delete %s: %w", key, err)
	}
	e.rev++
	e.notify(Event{Type: EventDelete, KV: KV{Key: key, Version: cur}, Revision: e.rev})
	return nil
}

// List implements Store.
func (e *Embedded) List(_ context.Context, prefix string) ([]KV, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("meta list %s: %w", prefix, err)
	}
	defer it.Close()
	var out []KV
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("meta list %s: %w", prefix, err)
		}
		out = append(out, decodeValue(string(it.Key()), v))
	}
	return out, it.Error()
}

// prefixEnd is the smallest key greater than every key with the prefix.
func prefixEnd(prefix string) []byte {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// Watch implements Store.
func (e *Embedded) Watch(ctx context.Context, prefix string) <-chan Event {
	w := &watcher{prefix: prefix, ch: make(chan Event, 64), ctx: ctx}
	e.watchMu.Lock()
	e.watchers[w] = struct{}{}
	e.watchMu.Unlock()
	go func() {
		<-ctx.Done()
		e.watchMu.Lock()
		delete(e.watchers, w)
		e.watchMu.Unlock()
		close(w.ch)
	}()
	return w.ch
}

// notify is called with e.mu held, so events reach each watcher in commit order.
func (e *Embedded) notify(ev Event) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	for w := range e.watchers {
		if !strings.HasPrefix(ev.KV.Key, w.prefix) {
			continue
		}
		select {
		case w.ch <- ev:
		case <-w.ctx.Done():
		}
	}
}

// Close implements Store.
func (e *Embedded) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.db.Close()
}
