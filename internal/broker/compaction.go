package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/compaction"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/pace"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Topic compaction (Pulsar's semantics): the compactor (package compaction)
// writes the latest message per key into a ledger of its own, named
// compactedLedgerPrefix + topic + "/" + sequence; then the horizon (the last
// topic entry compacted, as the mark-delete position) and that ledger's name
// (a property) are saved together in the topic's "__compaction" cursor and
// synced; only then is the previous compacted ledger deleted. A kill -9 at
// any step leaves either the old or the new pair in the cursor; compacted
// ledgers the cursor does not name are leftovers, deleted when the topic
// loads. The cursor holds back retention like a subscription.

const (
	compactionCursor      = "__compaction"
	compactedLedgerPrefix = "__compacted/"
	propCompactedLedger   = "compactedLedger"
)

// Compaction statuses, as Pulsar's LongRunningProcessStatus.
const (
	CompactionNotRun  = "NOT_RUN"
	CompactionRunning = "RUNNING"
	CompactionSuccess = "SUCCESS"
	CompactionError   = "ERROR"
)

// ErrCompactionRunning refuses a compaction while one runs on the topic.
var ErrCompactionRunning = errors.New("compaction already in progress")

// CompactionStatus is the state of a topic's last compaction.
type CompactionStatus struct {
	Status    string
	LastError string
}

// CompactionStats are the compaction figures of topic stats (Pulsar's
// CompactionStats) and of internal stats.
type CompactionStats struct {
	LastRemovedEventCount int64
	LastKeptEventCount    int64
	LastSucceedTimestamp  int64 // unix ms, 0 when never
	LastFailedTimestamp   int64
	LastDurationMillis    int64
	// Horizon is the last entry compacted (-1: none); Ledger the compacted
	// ledger's name, its Entries and Size what it holds.
	Horizon  int64
	Ledger   string
	LedgerID int64 // -1 when none
	Entries  int64
	Size     int64
	// Offloaded: every entry of the compacted ledger is in the object store.
	Offloaded bool
}

// compactedView is a topic's compacted data: the compacted ledger (nil when
// the topic was never compacted) and the horizon it covers.
type compactedView struct {
	name    string
	l       ledger.Ledger
	horizon int64
	seq     int64
}

// topicCompaction is a topic's compaction state.
type topicCompaction struct {
	view atomic.Pointer[compactedView]

	mu        sync.Mutex
	running   bool
	status    string
	lastError string
	closed    bool
	cancel    context.CancelFunc
	done      chan struct{}
	stats     CompactionStats
}

func compactedPrefix(topic string) string { return compactedLedgerPrefix + topic + "/" }

// loadCompaction opens the compacted ledger the cursor names and deletes
// the leftovers of interrupted compactions. Called by newTopic.
func (t *Topic) loadCompaction(ctx context.Context, cur *ledger.CursorState) error {
	v := &compactedView{horizon: -1}
	if cur != nil && cur.Properties[propCompactedLedger] != "" {
		name := cur.Properties[propCompactedLedger]
		l, err := t.b.store.Open(ctx, name)
		if err != nil {
			return fmt.Errorf("open compacted ledger %s: %w", name, err)
		}
		v = &compactedView{name: name, l: l, horizon: cur.MarkDelete, seq: compactedSeq(name)}
	}
	t.compaction.view.Store(v)
	t.compaction.status = CompactionNotRun
	t.compaction.stats.Horizon = v.horizon
	t.compaction.stats.Ledger = v.name
	names, err := t.b.store.Topics(ctx)
	if err != nil {
		return err
	}
	prefix := compactedPrefix(t.fullName)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && n != v.name {
			if err := t.b.store.Delete(ctx, n); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				t.b.log.Warn("delete leftover compacted ledger", "topic", t.fullName, "ledger", n, "err", err)
			}
		}
	}
	return nil
}

func compactedSeq(name string) int64 {
	n, _ := strconv.ParseInt(name[strings.LastIndexByte(name, '/')+1:], 10, 64)
	return n
}

// compactedView returns the topic's compacted view (never nil for a
// persistent topic).
func (t *Topic) compactedView() *compactedView {
	if v := t.compaction.view.Load(); v != nil {
		return v
	}
	return &compactedView{horizon: -1}
}

// startCompaction runs a compaction in the background; ErrCompactionRunning
// when one runs.
func (t *Topic) startCompaction() error {
	if t.ledger == nil {
		return newError(pb.ServerError_NotAllowedError, "compaction is for persistent topics")
	}
	c := &t.compaction
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errShuttingDown
	}
	if c.running {
		return ErrCompactionRunning
	}
	ctx, cancel := context.WithCancel(t.b.ctx)
	c.running, c.status, c.cancel, c.done = true, CompactionRunning, cancel, make(chan struct{})
	go t.runCompaction(ctx, c.done)
	return nil
}

// runCompaction compacts the topic up to its current last entry and
// installs the result.
func (t *Topic) runCompaction(ctx context.Context, done chan struct{}) {
	defer close(done)
	start := time.Now()
	res, err := t.compact(ctx)
	dur := time.Since(start)
	m := t.b.metrics.compaction
	c := &t.compaction
	c.mu.Lock()
	c.running, c.cancel = false, nil
	c.stats.LastDurationMillis = dur.Milliseconds()
	if err != nil {
		c.status, c.lastError = CompactionError, err.Error()
		c.stats.LastFailedTimestamp = time.Now().UnixMilli()
	} else {
		c.status, c.lastError = CompactionSuccess, ""
		c.stats.LastSucceedTimestamp = time.Now().UnixMilli()
		c.stats.LastRemovedEventCount, c.stats.LastKeptEventCount = res.Removed, res.Kept
		c.stats.Horizon, c.stats.Entries, c.stats.Size = res.Horizon, res.Entries, res.Bytes
		c.stats.Ledger = t.compactedView().name
	}
	c.mu.Unlock()
	m.duration.Observe(dur.Seconds())
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		t.b.log.Error("compaction failed", "topic", t.fullName, "err", err)
		return
	}
	m.runs.WithLabelValues("success").Inc()
	m.removed.Add(float64(res.Removed))
	m.kept.Add(float64(res.Kept))
	t.b.log.Info("topic compacted", "topic", t.fullName, "horizon", res.Horizon, "kept", res.Kept,
		"removed", res.Removed, "bytes", res.Bytes, "duration", dur)
}

// compact does one compaction: write, persist (cursor, synced), install,
// delete the previous ledger.
func (t *Topic) compact(ctx context.Context) (compaction.Result, error) {
	prev := t.compactedView()
	horizon := t.ledger.LastEntryID()
	if prev.l != nil && horizon <= prev.horizon {
		// Nothing new: the view stands.
		return compaction.Result{Horizon: prev.horizon, Entries: prev.l.Entries(), Bytes: prev.l.Size()}, nil
	}
	name := compactedPrefix(t.fullName) + strconv.FormatInt(prev.seq+1, 10)
	out, err := t.b.store.Open(ctx, name)
	if err != nil {
		return compaction.Result{}, fmt.Errorf("open compacted ledger %s: %w", name, err)
	}
	failed := func(err error) (compaction.Result, error) {
		if derr := t.b.store.Delete(ctx, name); derr != nil && !errors.Is(derr, ledger.ErrNotFound) {
			t.b.log.Warn("delete unfinished compacted ledger", "ledger", name, "err", derr)
		}
		return compaction.Result{}, err
	}
	if out.LastEntryID() >= 0 { // a leftover: start it afresh
		if _, err := failed(nil); err != nil {
			return compaction.Result{}, err
		}
		if out, err = t.b.store.Open(ctx, name); err != nil {
			return compaction.Result{}, fmt.Errorf("open compacted ledger %s: %w", name, err)
		}
	}
	var res compaction.Result
	err = pace.WithBackground(t.b.cfg.CompactionCPU)(func() (err error) {
		res, err = compaction.Compact(pace.NewContext(ctx, t.b.cfg.CompactionCPU), compaction.Input{Topic: t.ledger, Previous: prev.l,
			PreviousHorizon: prev.horizon, Horizon: horizon, Throttle: t.b.compactionThrottle(),
			ReadWith: pace.With(!t.b.cfg.CompactionNoIdleIO)}, out)
		return err
	})
	if err != nil {
		return failed(err)
	}
	if err := t.saveCompactionCursor(res.Horizon, name); err != nil {
		return failed(err)
	}
	t.compaction.view.Store(&compactedView{name: name, l: out, horizon: res.Horizon, seq: prev.seq + 1})
	t.compactionMoved()
	if prev.l != nil {
		if err := t.b.store.Delete(ctx, prev.name); err != nil && !errors.Is(err, ledger.ErrNotFound) {
			t.b.log.Warn("delete previous compacted ledger", "ledger", prev.name, "err", err)
		}
	}
	return res, nil
}

// saveCompactionCursor persists the horizon and the compacted ledger's name
// in one cursor state and waits until it is durable.
func (t *Topic) saveCompactionCursor(horizon int64, name string) error {
	st := ledger.NewCursorState(horizon)
	st.Properties = map[string]string{propCompactedLedger: name}
	if err := t.ledger.SaveCursor(compactionCursor, st); err != nil {
		return fmt.Errorf("save compaction cursor: %w", err)
	}
	if s, ok := t.ledger.(ledger.CursorSyncer); ok {
		if err := s.SyncCursors(); err != nil {
			return fmt.Errorf("sync compaction cursor: %w", err)
		}
	}
	return nil
}

// compactionMoved wakes the read-compacted subscriptions: what they read
// next may now come from the new view.
func (t *Topic) compactionMoved() {
	for _, s := range t.subscriptions() {
		s.signal()
	}
}

// compactionStatus returns the status of the last compaction.
func (t *Topic) compactionStatus() CompactionStatus {
	c := &t.compaction
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	if st == "" {
		st = CompactionNotRun
	}
	return CompactionStatus{Status: st, LastError: c.lastError}
}

// compactionStats returns the figures of the last compactions and of the
// compacted view.
func (t *Topic) compactionStats() CompactionStats {
	c := &t.compaction
	c.mu.Lock()
	st := c.stats
	c.mu.Unlock()
	v := t.compactedView()
	st.Horizon, st.Ledger, st.LedgerID, st.Entries, st.Size = v.horizon, v.name, -1, 0, 0
	if v.l != nil {
		st.LedgerID, st.Entries, st.Size = v.l.ID(), v.l.Entries(), v.l.Size()
		if o, ok := v.l.(ledger.Offloader); ok {
			st.Offloaded = st.Entries > 0 && o.OffloadedEntries() >= st.Entries
		}
	}
	return st
}

// closeCompaction stops a running compaction and closes the compacted
// ledger. Called when the topic closes.
func (t *Topic) closeCompaction() {
	c := &t.compaction
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if v := c.view.Load(); v != nil && v.l != nil {
		if err := v.l.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			t.b.log.Warn("close compacted ledger", "ledger", v.name, "err", err)
		}
	}
}

// deleteCompactedLedgers deletes every compacted ledger of a deleted topic.
func (b *Broker) deleteCompactedLedgers(ctx context.Context, topic string) {
	names, err := b.store.Topics(ctx)
	if err != nil {
		return
	}
	prefix := compactedPrefix(topic)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			if err := b.store.Delete(ctx, n); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				b.log.Warn("delete compacted ledger", "ledger", n, "err", err)
			}
		}
	}
}

// Compact starts the compaction of a persistent topic (loading it);
// ErrCompactionRunning when one runs.
func (b *Broker) Compact(ctx context.Context, name naming.Topic) error {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return err
	}
	return t.startCompaction()
}

// CompactionStatus returns the status of the topic's last compaction since
// the topic was loaded (NOT_RUN when none ran).
func (b *Broker) CompactionStatus(ctx context.Context, name naming.Topic) (CompactionStatus, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return CompactionStatus{}, err
	}
	return t.compactionStatus(), nil
}

// checkCompactionThreshold, run on every topic each CompactionCheckInterval
// (Pulsar's brokerServiceCompactionMonitorIntervalInSeconds), starts a
// compaction when the bytes written after
// the horizon exceed the threshold in force (topic, else namespace; 0 or
// unset: never). When the policies cannot be read it does nothing this round.
func (t *Topic) checkCompactionThreshold(ctx context.Context) {
	if t.ledger == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, t.b.cfg.OperationTimeout)
	defer cancel()
	p, err := t.b.EffectivePolicies(ctx, t.name)
	if err != nil {
		t.b.metrics.enforcementSkips.Inc()
		return
	}
	if p.CompactionThreshold == nil || *p.CompactionThreshold <= 0 {
		return
	}
	v := t.compactedView()
	last := t.ledger.LastEntryID()
	if last <= v.horizon {
		return
	}
	from := max(v.horizon+1, t.ledger.FirstEntryID())
	if backlog := (last - from + 1) * t.avgEntrySize(); backlog < *p.CompactionThreshold {
		return
	}
	if err := t.startCompaction(); err != nil && !errors.Is(err, ErrCompactionRunning) {
		t.b.log.Warn("start compaction", "topic", t.fullName, "err", err)
	}
}
