package compaction

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/messagebus/messagebus/internal/ledger"

	"golang.org/x/sync/semaphore"
)

// Input is what one compaction reads.
type Input struct {
	// Topic is the topic's ledger.
	Topic ledger.Ledger
	// Previous is the compacted ledger of the last compaction (nil: none)
	// and PreviousHorizon its horizon (-1: none).
	Previous        ledger.Ledger
	PreviousHorizon int64
	// Horizon is the last topic entry compacted, usually its LastEntryID
	// when the compaction starts.
	Horizon int64
	// Throttle, when set, is called after each read with the bytes read
	// and may wait (a rate limit); its error ends the compaction.
	Throttle func(ctx context.Context, bytes int) error
	// ReadWith, when set, runs each read (pace.IdleIO: at the idle I/O
	// priority).
	ReadWith func(read func() error) error
}

// read reads from l through ReadWith.
// read reads the next entries of l, into buf when l can (the entries are
// done with before the next read: what outlives it is copied).
func (in Input) read(ctx context.Context, l ledger.Ledger, from int64, buf *ledger.ReadBuf) (es []ledger.Entry, err error) {
	read := func() error {
		if br, ok := l.(ledger.BufferReader); ok {
			es, err = br.ReadInto(ctx, from, readEntries, readBytes, buf)
		} else {
			es, err = l.Read(ctx, from, readEntries, readBytes)
		}
		return err
	}
	if in.ReadWith == nil {
		err = read()
		return es, err
	}
	err = in.ReadWith(read)
	return es, err
}

// Result describes a finished compaction.
type Result struct {
	Horizon int64
	// Entries and Bytes are what the compacted ledger holds.
	Entries int64
	Bytes   int64
	// Kept and Removed count the messages read: kept in the view, or not
	// (older values, tombstones, messages without a key).
	Kept    int64
	Removed int64
}

// readBatch is how many entries (and bytes) one read asks for.
const (
	readEntries = 1000
	readBytes   = 1 << 20
	// maxInFlight bounds the appends not yet durable, and maxInFlightBytes
	// their bytes: the compacted ledger shares the journal with producers,
	// whose group commits would otherwise carry (and wait for the write of)
	// megabytes of compacted entries queued at once.
	maxInFlight      = 4096
	maxInFlightBytes = 256 << 10
)

// position is a message's place in the topic.
type position struct {
	entry int64
	index int32
}

// Compact writes the compacted view of in to out (an empty ledger) and
// returns what it wrote. out is not closed; the caller makes the result
// durable and deletes out on failure.
func Compact(ctx context.Context, in Input, out ledger.Ledger) (Result, error) {
	res := Result{Horizon: in.Horizon}
	if in.Horizon <= in.PreviousHorizon && in.Previous != nil {
		res.Horizon = in.PreviousHorizon
		in.Horizon = in.PreviousHorizon
	}
	// Phase one: the latest position of every live key. A chunked message
	// is at its last chunk; the entries of all its chunks are kept when it
	// is a key's latest value.
	latest := newKeyMap()
	chunked := map[string][]int64{} // key → chunk entries of its latest value, when chunked
	pending := map[string][]int64{} // message uuid → chunk entries read so far
	var ps parser
	err := forEachEntry(ctx, in, func(e Entry) error {
		p, err := ps.parse(e, false)
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.ID, err)
		}
		if c := p.chunk; c != nil {
			ids := append(pending[c.uuid], e.ID)
			if c.id == 0 {
				ids = []int64{e.ID}
			}
			if c.id < c.num-1 {
				pending[c.uuid] = ids
				return nil
			}
			delete(pending, c.uuid)
			if c.hasKey && len(ids) == int(c.num) { // else incomplete: chunks lost or trimmed
				latest.set([]byte(c.key), position{e.ID, 0})
				chunked[c.key] = ids
			}
			return nil
		}
		for _, m := range p.messages {
			switch {
			case !m.hasKey:
			case m.tombstone:
				latest.delete(m.key)
				if len(chunked) > 0 {
					delete(chunked, string(m.key))
				}
			default:
				latest.set(m.key, position{e.ID, int32(m.index)})
				if len(chunked) > 0 {
					delete(chunked, string(m.key))
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	keepChunks := map[int64]bool{}
	for _, ids := range chunked {
		for _, id := range ids {
			keepChunks[id] = true
		}
	}
	// A chunked message not complete at the horizon may complete after it,
	// where readers of the view go on reading the topic: keep its chunks.
	for _, ids := range pending {
		for _, id := range ids {
			keepChunks[id] = true
		}
	}
	clear(chunked)
	clear(pending)

	// Phase two: copy the entries holding latest messages.
	w := newWriter(out)
	err = forEachEntry(ctx, in, func(e Entry) error {
		p, err := ps.parse(e, true)
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.ID, err)
		}
		if c := p.chunk; c != nil {
			keep := keepChunks[e.ID]
			if c.id == c.num-1 { // a message counts once, at its last chunk
				if keep {
					res.Kept++
				} else {
					res.Removed++
				}
			}
			if !keep {
				return nil
			}
			b := EncodeEntry(Entry{ID: e.ID, Data: e.Data})
			res.Entries++
			res.Bytes += int64(len(b))
			return w.append(ctx, b)
		}
		var mask []int64
		kept := 0
		for _, m := range p.messages {
			if pos, ok := latest.get(m.key); ok && m.hasKey && !m.tombstone && pos == (position{e.ID, int32(m.index)}) {
				if mask == nil {
					mask = make([]int64, (max(len(p.smms), 1)+63)/64)
				}
				mask[m.index/64] |= 1 << (m.index % 64)
				kept++
			}
		}
		res.Kept += int64(kept)
		res.Removed += int64(len(p.messages) - kept)
		if kept == 0 {
			return nil
		}
		data := e.Data
		if !p.batch {
			mask = nil
		} else if kept < len(p.smms) {
			if data, err = rebatch(p, mask); err != nil {
				return fmt.Errorf("rebatch entry %d: %w", e.ID, err)
			}
		} else {
			mask = nil // every message survives, none was removed before
		}
		b := EncodeEntry(Entry{ID: e.ID, Mask: mask, Data: data})
		res.Entries++
		res.Bytes += int64(len(b))
		return w.append(ctx, b)
	})
	if werr := w.wait(); err == nil {
		err = werr
	}
	return res, err
}

// keyMap maps each live key to its latest position. Keys are looked up
// as byte slices without copying; a key is copied once, when it is new.
type keyMap struct {
	index map[string]int // key → slot in pos
	pos   []position
}

func newKeyMap() *keyMap { return &keyMap{index: map[string]int{}} }

func (m *keyMap) get(k []byte) (position, bool) {
	i, ok := m.index[string(k)]
	if !ok {
		return position{}, false
	}
	return m.pos[i], true
}

func (m *keyMap) set(k []byte, p position) {
	if i, ok := m.index[string(k)]; ok {
		m.pos[i] = p
		return
	}
	m.index[string(k)] = len(m.pos)
	m.pos = append(m.pos, p)
}

// delete forgets k; its slot is not reused (tombstones are few).
func (m *keyMap) delete(k []byte) { delete(m.index, string(k)) }

// forEachEntry calls fn with the previous compacted entries, then with the
// topic's entries after the previous horizon up to the horizon.
func forEachEntry(ctx context.Context, in Input, fn func(Entry) error) error {
	var buf ledger.ReadBuf
	if in.Previous != nil {
		last := in.Previous.LastEntryID()
		for from := int64(0); from <= last; {
			if err := ctx.Err(); err != nil {
				return err
			}
			es, err := in.read(ctx, in.Previous, from, &buf)
			if err != nil {
				return fmt.Errorf("read compacted ledger %s: %w", in.Previous.Name(), err)
			}
			if len(es) == 0 {
				break
			}
			if err := in.pace(ctx, es); err != nil {
				return err
			}
			for _, raw := range es {
				e, err := DecodeEntry(raw.Data)
				if err != nil {
					return fmt.Errorf("compacted ledger %s entry %d: %w", in.Previous.Name(), raw.ID, err)
				}
				if err := fn(e); err != nil {
					return err
				}
				yield()
				from = raw.ID + 1
			}
		}
	}
	from := max(in.PreviousHorizon+1, in.Topic.FirstEntryID())
	for from <= in.Horizon {
		if err := ctx.Err(); err != nil {
			return err
		}
		es, err := in.read(ctx, in.Topic, from, &buf)
		if errors.Is(err, ledger.ErrTrimmed) {
			from = in.Topic.FirstEntryID()
			continue
		}
		if err != nil {
			return fmt.Errorf("read topic: %w", err)
		}
		if len(es) == 0 {
			break // the rest was lost to storage damage
		}
		if err := in.pace(ctx, es); err != nil {
			return err
		}
		for _, raw := range es {
			if raw.ID > in.Horizon {
				return nil
			}
			if err := fn(Entry{ID: raw.ID, Data: raw.Data}); err != nil {
				return err
			}
			yield()
			from = raw.ID + 1
		}
	}
	return nil
}

// pace runs Throttle for the entries just read and yields: a compaction
// runs beside publishing and should not hold a core between reads.
func (in Input) pace(ctx context.Context, es []ledger.Entry) error {
	if in.Throttle != nil {
		n := 0
		for _, e := range es {
			n += len(e.Data)
		}
		if err := in.Throttle(ctx, n); err != nil {
			return err
		}
	}
	yield()
	return nil
}

// yield lets waiting goroutines run after each entry. The compaction is
// CPU work between its reads; without it, a goroutine the compaction's P
// should run next (a producer's connection, the journal's committer back
// from its fdatasync) waits until the Go scheduler preempts the compaction
// (10 ms) or its next read: publish latency, not throughput, pays.
func yield() { runtime.Gosched() }

// writer appends to the compacted ledger with a bounded number of appends
// in flight.
type writer struct {
	l     ledger.Ledger
	slots chan struct{}
	bytes *semaphore.Weighted
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

func newWriter(l ledger.Ledger) *writer {
	return &writer{l: l, slots: make(chan struct{}, maxInFlight), bytes: semaphore.NewWeighted(maxInFlightBytes)}
}

func (w *writer) append(ctx context.Context, b []byte) error {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	n := min(int64(len(b)), maxInFlightBytes) // an entry larger than the bound goes alone
	if err := w.bytes.Acquire(ctx, n); err != nil {
		<-w.slots
		return err
	}
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		w.bytes.Release(n)
		<-w.slots
		return err
	}
	w.wg.Add(1)
	appendFn := w.l.Append
	if bg, ok := w.l.(ledger.BackgroundAppender); ok {
		appendFn = bg.AppendBackground // joins producers' group commits
	}
	appendFn(b, func(_ int64, err error) {
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("append to compacted ledger %s: %w", w.l.Name(), err)
			}
			w.mu.Unlock()
		}
		w.bytes.Release(n)
		<-w.slots
		w.wg.Done()
	})
	return nil
}

func (w *writer) wait() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
