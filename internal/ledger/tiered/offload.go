package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/object"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/pace"
)

// putAttempts is how many times an offload tries to store one object
// (the S3 client retries each call on its own as well).
const putAttempts = 4

// Offload implements ledger.Offloader: it offloads the entries with id <
// before (at most the last durable one) in the background.
func (l *Ledger) Offload(before int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return ledger.ErrOffloadRunning
	}
	if l.s.ctx.Err() != nil {
		return ledger.ErrClosed
	}
	l.running = true
	l.status.Status = ledger.OffloadRunning
	l.status.LastError = ""
	ctx, cancel := context.WithCancel(l.s.ctx)
	done := make(chan struct{})
	l.stopOffload = func() { cancel(); <-done }
	started := l.s.spawn(func() {
		defer close(done)
		defer cancel()
		l.offloadMu.Lock()
		// The context carries the priority too, so that the object's upload
		// (the HTTP transport's goroutines) runs at it as well.
		err := pace.WithBackground(l.s.o.CPU)(func() error { return l.offload(pace.NewContext(ctx, l.s.o.CPU), before) })
		if err == nil {
			l.collectOrphans(ctx)
		}
		l.offloadMu.Unlock()
		l.mu.Lock()
		l.running = false
		l.status.FirstUnoffloaded = l.man.end()
		if err != nil {
			l.status.Status = ledger.OffloadError
			l.status.LastError = err.Error()
			l.s.o.Metrics.offloadErrors.Inc()
			l.s.log.Warn("offload failed", "ledger", l.Name(), "err", err)
		} else {
			l.status.Status = ledger.OffloadSuccess
		}
		l.mu.Unlock()
		if err == nil {
			l.scheduleLocalDeletion()
		}
	})
	if !started {
		cancel()
		close(done)
		l.running = false
		l.status.Status = ledger.OffloadNotRun
		return ledger.ErrClosed
	}
	return nil
}

// OffloadStatus implements ledger.Offloader.
func (l *Ledger) OffloadStatus() ledger.OffloadStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.status
	if !l.running {
		st.FirstUnoffloaded = l.man.end()
	}
	return st
}

// offload writes objects of at most MaxObjectBytes of entry data from the
// first entry not offloaded up to before, recording each in the manifest
// once stored.
func (l *Ledger) offload(ctx context.Context, before int64) error {
	before = min(before, l.inner.LastEntryID()+1)
	buf := l.s.encodeBuf() // the object being written, reused for the next
	defer func() { l.s.keepEncodeBuf(buf) }()
	p := l.s.pacer()
	var rb ledger.ReadBuf // the local reads' memory, reused
	for {
		m := l.manifest()
		start := max(m.end(), l.inner.FirstEntryID(), m.TrimmedBefore)
		if start >= before {
			return nil
		}
		enc := object.NewEncoder(buf, l.ID(), start, l.s.o.BlockSize)
		entries, bytesIn, last, err := l.collect(ctx, p, start, before, enc, &rb)
		if errors.Is(err, ledger.ErrTrimmed) {
			continue // trimmed meanwhile: start again from the new first entry
		}
		if err != nil {
			return err
		}
		if entries == 0 {
			return nil // the rest was lost locally: nothing to offload
		}
		obj, err := enc.Finish(last)
		if err != nil {
			return err
		}
		if err := p.Step(ctx); err != nil { // after the encoding's copies and CRCs
			return err
		}
		key := l.s.objectKey(l.Name(), l.ID(), start, last)
		if err := l.ensureManifestFile(); err != nil {
			return err
		}
		if err := l.store(ctx, key, obj); err != nil {
			return err
		}
		if err := l.record(objectEntry{Key: key, First: start, Last: last, Size: int64(len(obj)),
			Bytes: bytesIn, Entries: entries, OffloadedAtMs: time.Now().UnixMilli()}); err != nil {
			return err
		}
		buf = obj
		l.s.o.Metrics.offloadedBytes.Add(float64(bytesIn))
		l.s.o.Metrics.offloadedObjects.Inc()
		l.mu.Lock()
		l.status.FirstUnoffloaded = last + 1
		l.mu.Unlock()
	}
}

// collect reads the local entries from start up to before (exclusive), at
// most MaxObjectBytes of data (at least one entry), into enc as it reads
// them, and returns how many entries and bytes it added and the last id.
func (l *Ledger) collect(ctx context.Context, p *pace.Pacer, start, before int64, enc *object.Encoder, rb *ledger.ReadBuf) (entries, total, last int64, err error) {
	br, _ := l.inner.(ledger.BufferReader)
	for from := start; from < before && total < int64(l.s.o.MaxObjectBytes); {
		// Reads of at most collectBatchBytes, throttled, yielding between
		// them: an offload runs at low priority beside publishing.
		want := min(l.s.o.MaxObjectBytes-int(total), collectBatchBytes)
		var batch []ledger.Entry
		err := pace.With(!l.s.o.NoIdleIO)(func() (err error) {
			n := int(min(before-from, 1024))
			if br != nil {
				batch, err = br.ReadInto(ctx, from, n, want, rb)
			} else {
				batch, err = l.inner.Read(ctx, from, n, want)
			}
			return err
		})
		if err != nil {
			return 0, 0, 0, err
		}
		if len(batch) == 0 {
			break
		}
		n, reached := 0, false
		for _, e := range batch {
			if e.ID >= before {
				reached = true
				break
			}
			if err := enc.Add(e.ID, e.Data); err != nil {
				return 0, 0, 0, err
			}
			entries++
			last = e.ID
			n += len(e.Data)
		}
		total += int64(n)
		if err := l.s.throttle(ctx, n); err != nil {
			return 0, 0, 0, err
		}
		if err := p.Step(ctx); err != nil {
			return 0, 0, 0, err
		}
		runtime.Gosched()
		if reached {
			break
		}
		from = batch[len(batch)-1].ID + 1
	}
	return entries, total, last, nil
}

// collectBatchBytes is the most entry data an offload reads from the local
// ledger at once.
const collectBatchBytes = 1 << 20

// pacer paces the steps of one offload: pauses while the store's ledgers
// are appended to (unless Options.NoYield); nil: none.
func (s *Store) pacer() *pace.Pacer {
	if s.o.NoYield {
		return nil
	}
	return pace.New(s.appends.Busy)
}

// throttle waits until an offload may go on after reading n bytes, under
// Options.MaxRate (shared by every offload of the store).
func (s *Store) throttle(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// store writes obj under key once: an object already there (left by an
// interrupted offload) is adopted when identical, else replaced, since no
// manifest lists it.
func (l *Ledger) store(ctx context.Context, key string, obj []byte) error {
	var err error
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = l.storeOnce(ctx, key, obj)
		if err == nil || attempt == putAttempts || ctx.Err() != nil {
			break
		}
		l.s.log.Info("offload: storing an object failed; retrying", "key", key, "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 2
	}
	if err != nil {
		return fmt.Errorf("store object %s: %w", key, err)
	}
	return nil
}

func (l *Ledger) storeOnce(ctx context.Context, key string, obj []byte) error {
	ctx, cancel := context.WithTimeout(ctx, l.s.o.OpTimeout)
	defer cancel()
	err := l.s.o.Objects.Put(ctx, key, obj, true)
	if !errors.Is(err, objstore.ErrExists) {
		return err
	}
	old, err := l.s.o.Objects.Get(ctx, key, 0, -1)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return err
	}
	if bytes.Equal(old, obj) {
		l.s.log.Info("offload: adopted the object of an interrupted offload", "key", key)
		return nil
	}
	l.s.log.Warn("offload: replacing an unreferenced object that differs", "key", key, "size", len(old))
	l.s.cache.Forget(key)
	if err := l.s.o.Objects.Delete(ctx, key); err != nil {
		return err
	}
	return l.s.o.Objects.Put(ctx, key, obj, true)
}

// ensureManifestFile writes the (empty) manifest before the ledger's first
// object, so that after a crash the collection at open finds its orphans.
func (l *Ledger) ensureManifestFile() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.man.onDisk {
		return nil
	}
	next := *l.man
	if err := next.save(l.s.o.Dir); err != nil {
		return err
	}
	l.man = &next
	return nil
}

// record adds o to the manifest, durably. An object whose entries were all
// trimmed during the offload is deleted instead.
func (l *Ledger) record(o objectEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o.Last < l.man.TrimmedBefore {
		l.s.deleteObjects([]objectEntry{o})
		return nil
	}
	next := *l.man
	next.Objects = append(append([]objectEntry(nil), l.man.Objects...), o)
	if err := next.save(l.s.o.Dir); err != nil {
		return err
	}
	l.man = &next
	return nil
}

// collectOrphans deletes the objects of the ledger no manifest entry lists
// (left by an offload interrupted between its PUT and its manifest write,
// for a range no later offload adopted). Only an offload writes objects of
// the ledger, and none runs while this does.
func (l *Ledger) collectOrphans(ctx context.Context) {
	prefix := strings.TrimSuffix(l.s.objectKey(l.Name(), l.ID(), 0, 0), "0-0")
	lctx, cancel := context.WithTimeout(ctx, l.s.o.OpTimeout)
	list, err := l.s.o.Objects.List(lctx, prefix)
	cancel()
	if err != nil {
		l.s.log.Warn("offload: listing objects to collect orphans", "ledger", l.Name(), "err", err)
		return
	}
	m := l.manifest()
	var orphans []objectEntry
	for _, o := range list {
		if !m.listed(o.Key) {
			orphans = append(orphans, objectEntry{Key: o.Key})
		}
	}
	if len(orphans) > 0 {
		l.s.log.Info("offload: deleting objects no manifest lists", "ledger", l.Name(), "objects", len(orphans))
		l.s.deleteObjects(orphans)
	}
}
