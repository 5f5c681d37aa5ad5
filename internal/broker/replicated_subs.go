package broker

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
)

// Replicated subscriptions (the client's ReplicateSubscriptionState).
//
// A subscription's progress is carried to the other clusters as source
// watermarks: for each cluster messages come from, the highest source
// position among the entries up to the subscription's mark-delete (an
// entry written here has source (this cluster, its own position); a
// replicated one, the replicated_from cluster and its source position).
// Because each source's entries keep their order in every cluster, all of a
// source's entries up to its watermark are acknowledged here. Once a
// second (replicatedSubscriptionInterval) the watermarks go through each
// replicator to the remote (Replicator.UpdateSubscription), which moves
// the subscription of the same name over the longest prefix of its own
// entries they cover (ApplyReplicatedSubscription), creating it when
// missing: a consumer that fails over starts at most about a second plus
// the replication delay behind, never past a message not acknowledged
// (at-least-once). Only the mark-delete position travels, not individual
// acknowledgements after it.
//
// The set of replicated subscriptions of a topic is kept in the internal
// cursor __mb_repl_subs. The watermarks live in memory: after a reload they
// start again from the subscription's mark-delete, and only progress from
// there is sent.

const replSubsCursor = internalCursorPrefix + "repl_subs"

// replicatedSubscriptionInterval is how often the progress of replicated
// subscriptions is sent to the other clusters.
const replicatedSubscriptionInterval = time.Second

// maxWatermarkScan bounds the entries read per subscription and round.
const maxWatermarkScan = 10000

type replSubState struct {
	scanned int64 // last entry folded into marks
	marks   map[string]replPos
}

type replicatedSubs struct {
	mu sync.Mutex
	m  map[string]*replSubState
}

// loadReplicatedSubs restores the set at topic load.
func (t *Topic) loadReplicatedSubs(cursors map[string]*ledger.CursorState) {
	st := cursors[replSubsCursor]
	if st == nil {
		return
	}
	t.replSubs.m = map[string]*replSubState{}
	for name := range st.Properties {
		md := int64(-1)
		if c := cursors[name]; c != nil {
			md = c.MarkDelete
		}
		t.replSubs.m[name] = &replSubState{scanned: md, marks: map[string]replPos{}}
	}
}

// markReplicated makes s a replicated subscription (once set, it stays).
func (t *Topic) markReplicated(s *Subscription) {
	if t.ledger == nil || !s.durable {
		return
	}
	rs := &t.replSubs
	rs.mu.Lock()
	if rs.m[s.name] != nil {
		rs.mu.Unlock()
		return
	}
	if rs.m == nil {
		rs.m = map[string]*replSubState{}
	}
	rs.m[s.name] = &replSubState{scanned: s.markDelete(), marks: map[string]replPos{}}
	rs.mu.Unlock()
	t.saveReplicatedSubs()
}

func (t *Topic) saveReplicatedSubs() {
	rs := &t.replSubs
	rs.mu.Lock()
	st := ledger.NewCursorState(-1)
	st.Properties = make(map[string]string, len(rs.m))
	for name := range rs.m {
		st.Properties[name] = "true"
	}
	rs.mu.Unlock()
	if err := t.ledger.SaveCursor(replSubsCursor, st); err != nil {
		t.b.log.Error("save replicated subscriptions", "topic", t.fullName, "err", err)
	}
}

// entrySource is where an entry comes from: this cluster and its own
// position, or the cluster and position it was replicated from.
func (t *Topic) entrySource(e ledger.Entry) (*replSource, bool) {
	meta, _, err := wire.SplitPayload(e.Data)
	var info wire.MetadataInfo
	if err != nil || wire.ParseMetadata(meta, &info) != nil {
		return nil, false
	}
	if info.ReplicatedFrom == nil {
		return &replSource{cluster: t.b.cfg.ClusterName, pos: replPos{t.ledgerID, e.ID}}, true
	}
	src, err := replicatedSource(meta)
	return src, err == nil
}

// replicateSubscriptions sends the watermarks of t's replicated
// subscriptions to every remote it replicates to.
func (t *Topic) replicateSubscriptions() {
	reps := t.replicators()
	if len(reps) == 0 || t.ledger == nil {
		return
	}
	rs := &t.replSubs
	rs.mu.Lock()
	names := make([]string, 0, len(rs.m))
	for name := range rs.m {
		names = append(names, name)
	}
	rs.mu.Unlock()
	sort.Strings(names)
	dropped := false
	for _, name := range names {
		t.mu.Lock()
		s := t.subs[name]
		t.mu.Unlock()
		rs.mu.Lock()
		st := rs.m[name]
		if s == nil {
			delete(rs.m, name) // unsubscribed
			dropped = true
		}
		rs.mu.Unlock()
		if s == nil || st == nil {
			continue
		}
		marks := t.foldWatermarks(st, s.markDelete())
		if len(marks) == 0 {
			continue
		}
		for _, rep := range reps {
			rep.UpdateSubscription(name, marks)
		}
	}
	if dropped {
		t.saveReplicatedSubs()
	}
}

// foldWatermarks advances st over the entries up to md and returns the
// watermarks encoded. Only the ticker goroutine calls it for one topic.
func (t *Topic) foldWatermarks(st *replSubState, md int64) map[string]string {
	if md < st.scanned { // the cursor went back (reset): start over from it
		st.scanned, st.marks = md, map[string]replPos{}
	}
	from := max(st.scanned+1, t.ledger.FirstEntryID())
	limit := from + maxWatermarkScan
	ctx, cancel := context.WithTimeout(t.b.ctx, t.b.cfg.OperationTimeout)
	defer cancel()
	for from <= md && from < limit {
		es, err := t.ledger.Read(ctx, from, int(min(512, md-from+1)), 8<<20)
		if err != nil || len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.ID > md {
				break
			}
			if src, ok := t.entrySource(e); ok {
				if cur, ok := st.marks[src.cluster]; !ok || cur.lessEq(src.pos) {
					st.marks[src.cluster] = src.pos
				}
			}
			st.scanned, from = e.ID, e.ID+1
		}
	}
	out := make(map[string]string, len(st.marks))
	for c, p := range st.marks {
		out[c] = p.String()
	}
	return out
}

// ApplyReplicatedSubscription moves subscription sub of topic name (created
// durable at the earliest entry when missing, and marked replicated) over
// the longest prefix of entries after its mark-delete that the watermarks
// cover. It returns the new mark-delete entry id.
func (b *Broker) ApplyReplicatedSubscription(ctx context.Context, name naming.Topic, sub string, watermarks map[string][2]int64) (int64, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return 0, err
	}
	if sub == "" || isInternalCursor(sub) || isReplicationCursor(sub) {
		return 0, fmt.Errorf("%w: subscription name %q", ErrNotAllowed, sub)
	}
	marks := make(map[string]replPos, len(watermarks))
	for c, p := range watermarks {
		marks[c] = replPos{p[0], p[1]}
	}
	created := false
	s, err := t.getOrCreateSubscription(sub, 0, func() *Subscription {
		created = true
		return newSubscription(t, sub, true, ledger.NewCursorState(t.ledger.FirstEntryID()-1))
	})
	if err != nil {
		return 0, err
	}
	if created {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.saveCursor()
	}
	t.markReplicated(s)
	md := s.markDelete()
	covered := md
	from := max(md+1, t.ledger.FirstEntryID())
	limit := from + 100*maxWatermarkScan
scan:
	for from <= t.ledger.LastEntryID() && from < limit {
		es, err := t.ledger.Read(ctx, from, 512, 8<<20)
		if err != nil {
			return md, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			src, ok := t.entrySource(e)
			if !ok {
				break scan
			}
			if w, ok := marks[src.cluster]; !ok || !src.pos.lessEq(w) {
				break scan
			}
			covered, from = e.ID, e.ID+1
		}
	}
	if covered > md {
		s.ackBefore(covered + 1)
		s.saveCursor()
		s.signal()
	}
	return covered, nil
}
