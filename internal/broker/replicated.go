package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Geo-replication's receiving side. A SEND whose metadata has
// replicated_from comes from another cluster's replicator:
//   - Only replicator roles may send it: superusers and Config.ReplicatorRoles
//     (any role when authorization is off). Others get NotAllowedError.
//   - The topic must replicate with the source cluster (its effective
//     replication clusters name it and this cluster); else NotAllowedError.
//   - It must carry its source position (geo.SourcePositionProperty);
//     it is stored once per (source cluster, source position): a resend of
//     a stored one gets a receipt of -1:-1 and is not stored again, one still
//     being stored gets SEND_ERROR (the replicator reconnects and resends).
//     Producer deduplication does not apply to it.
//
//   - Sends on one producer form a stream: once one is refused (SEND_ERROR
//     for any reason, including a failed append), every later send of that
//     producer is refused without being stored, so a replicator that
//     resends from the refused entry never finds a later one stored before
//     it (which deduplication would otherwise take as covering it). This
//     holds for every producer that sends replicated messages.
//
// The state per source cluster is the highest source position stored
// (positions arrive in increasing order from one replicator). A position
// whose append failed is remembered, so its resend is stored even when a
// later position got stored meanwhile. The state is snapshotted into the
// internal cursor __mb_repl_dedup (properties: cluster -> "ledger:entry";
// mark-delete: the last entry reflected) and rebuilt at load by replaying
// the entries after the snapshot, as producer deduplication does.

const replDedupCursor = internalCursorPrefix + "repl_dedup"

// replPos is a position in the source cluster's topic.
type replPos struct{ ledger, entry int64 }

func (a replPos) lessEq(b replPos) bool {
	return a.ledger < b.ledger || (a.ledger == b.ledger && a.entry <= b.entry)
}

func (a replPos) String() string { return geo.FormatSourcePosition(a.ledger, a.entry) }

// replSource is where a replicated send comes from.
type replSource struct {
	cluster string
	pos     replPos
	marker  bool // a replicated marker (markers.go)
}

// replicatedSource reads the source cluster and position of a replicated
// message's metadata. It scans the two fields it needs (replicated_from, the
// last one as protobuf merges; the first source position property) rather
// than decoding the whole metadata: it runs for every replicated send.
func replicatedSource(meta []byte) (*replSource, error) {
	var from, pos []byte
	hasPos := false
	for b := meta; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("decode metadata: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == mdReplicatedFrom || num == mdProperties) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("decode metadata: %w", protowire.ParseError(n))
			}
			b = b[n:]
			if num == mdReplicatedFrom {
				from = v
			} else if !hasPos {
				k, val, err := keyValue(v)
				if err != nil {
					return nil, fmt.Errorf("decode metadata: %w", err)
				}
				if string(k) == geo.SourcePositionProperty {
					pos, hasPos = val, true
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, fmt.Errorf("decode metadata: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !hasPos {
		return nil, fmt.Errorf("replicated message from %s has no %s property", from, geo.SourcePositionProperty)
	}
	l, e, err := geo.ParseSourcePosition(string(pos))
	if err != nil {
		return nil, err
	}
	return &replSource{cluster: string(from), pos: replPos{l, e}}, nil
}

// MessageMetadata and KeyValue field numbers replicatedSource reads
// (PulsarApi.proto).
const (
	mdProperties     = 4
	mdReplicatedFrom = 5
	kvKey, kvValue   = 1, 2
)

// keyValue decodes a KeyValue (the last of a repeated field wins, as in
// protobuf).
func keyValue(b []byte) (key, value []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == kvKey || num == kvValue) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			b = b[n:]
			if num == kvKey {
				key = v
			} else {
				value = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return key, value, nil
}

const errStreamBroken = "an earlier send of this producer was refused, so this one is not stored: reconnect and resend from the refused one"

// breakReplicationStream marks the producer's stream broken when it has
// sent replicated messages.
func (c *conn) breakReplicationStream(producerID uint64) {
	c.mu.Lock()
	p := c.producers[producerID]
	c.mu.Unlock()
	if p != nil && (p.sentReplicated.Load() || strings.HasPrefix(p.name, geo.CursorPrefix)) {
		p.streamBroken.Store(true)
	}
}

// mayReplicate reports whether the connection's role may send replicated
// messages.
func (c *conn) mayReplicate() bool {
	a := c.b.cfg.Auth
	if !a.Enabled() {
		return true
	}
	role := c.role()
	if a.IsSuperuser(role) {
		return true
	}
	for _, r := range c.b.cfg.ReplicatorRoles {
		if r == role {
			return true
		}
	}
	return false
}

type replDedupState struct {
	mu        sync.Mutex
	pushed    map[string]replPos
	persisted map[string]replPos
	failed    map[string]map[replPos]bool
	lastEntry int64
	dirty     bool
}

func newReplDedup() *replDedupState {
	return &replDedupState{pushed: map[string]replPos{}, persisted: map[string]replPos{}, failed: map[string]map[replPos]bool{}, lastEntry: -1}
}

// openReplDedup returns the state of a topic: recovered from its snapshot,
// or, for a topic that has none (it never replicated: replicated sends are
// refused without the state), a new one covering every entry so far, made
// durable before the topic takes any replicated send, so that a topic with a
// long history needs no replay.
func openReplDedup(ctx context.Context, l ledger.Ledger, snap *ledger.CursorState) (*replDedupState, error) {
	if snap != nil {
		return recoverReplDedup(ctx, l, snap)
	}
	d := newReplDedup()
	d.lastEntry = l.LastEntryID()
	if err := l.SaveCursor(replDedupCursor, snapshotState(d)); err != nil {
		return nil, err
	}
	if cs, ok := l.(ledger.CursorSyncer); ok {
		if err := cs.SyncCursors(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// recoverReplDedup rebuilds the state from its snapshot and the entries after it.
func recoverReplDedup(ctx context.Context, l ledger.Ledger, snap *ledger.CursorState) (*replDedupState, error) {
	d := newReplDedup()
	if snap != nil {
		for cluster, v := range snap.Properties {
			if le, en, err := geo.ParseSourcePosition(v); err == nil {
				d.persisted[cluster] = replPos{le, en}
			}
		}
		d.lastEntry = snap.MarkDelete
	}
	from := max(d.lastEntry+1, l.FirstEntryID())
	var info wire.MetadataInfo
	for from <= l.LastEntryID() {
		es, err := l.Read(ctx, from, 512, 8<<20)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if meta, _, err := wire.SplitPayload(e.Data); err == nil && wire.ParseMetadata(meta, &info) == nil && info.ReplicatedFrom != nil {
				if src, err := replicatedSource(meta); err == nil {
					if cur, ok := d.persisted[src.cluster]; !ok || cur.lessEq(src.pos) {
						d.persisted[src.cluster] = src.pos
					}
				}
			}
			d.lastEntry = e.ID
			from = e.ID + 1
		}
	}
	for c, p := range d.persisted {
		d.pushed[c] = p
	}
	d.dirty = true
	return d, nil
}

// check classifies a replicated send and, when new, records it as pushed.
func (d *replDedupState) check(s *replSource) dedupVerdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.persisted[s.cluster]; ok && s.pos.lessEq(p) {
		if f := d.failed[s.cluster]; f[s.pos] {
			delete(f, s.pos)
			return dedupNew
		}
		return dedupDuplicate
	}
	if p, ok := d.pushed[s.cluster]; ok && s.pos.lessEq(p) {
		return dedupInFlight
	}
	d.pushed[s.cluster] = s.pos
	return dedupNew
}

// stored records the outcome of an append.
func (d *replDedupState) stored(s *replSource, entryID int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if p, ok := d.persisted[s.cluster]; ok {
			d.pushed[s.cluster] = p
			if s.pos.lessEq(p) {
				if d.failed[s.cluster] == nil {
					d.failed[s.cluster] = map[replPos]bool{}
				}
				d.failed[s.cluster][s.pos] = true
			}
		} else {
			delete(d.pushed, s.cluster)
		}
		return
	}
	if p, ok := d.persisted[s.cluster]; !ok || p.lessEq(s.pos) {
		d.persisted[s.cluster] = s.pos
	}
	d.lastEntry = max(d.lastEntry, entryID)
	d.dirty = true
}

// saveReplDedup snapshots the state into its cursor when it changed. With
// nothing in flight, the snapshot also covers every entry stored so far,
// so a reload replays only what came after.
func (t *Topic) saveReplDedup() {
	d := t.replDedup
	if d == nil {
		return
	}
	d.mu.Lock()
	idle := true
	for c, p := range d.pushed {
		if d.persisted[c] != p {
			idle = false
		}
	}
	if idle && t.ledger.LastEntryID() > d.lastEntry+1024 {
		d.lastEntry, d.dirty = t.ledger.LastEntryID(), true
	}
	if !d.dirty {
		d.mu.Unlock()
		return
	}
	st := snapshotState(d)
	d.dirty = false
	d.mu.Unlock()
	if err := t.ledger.SaveCursor(replDedupCursor, st); err != nil {
		t.b.log.Error("save replication deduplication snapshot", "topic", t.fullName, "err", err)
	}
}

// snapshotState encodes the state as its cursor; d.mu held.
func snapshotState(d *replDedupState) *ledger.CursorState {
	st := ledger.NewCursorState(d.lastEntry)
	st.Properties = make(map[string]string, len(d.persisted))
	for c, p := range d.persisted {
		st.Properties[c] = p.String()
	}
	return st
}

// refuseReplicated answers a replicated send the topic does not take; it
// reports whether it did.
func (t *Topic) refuseReplicated(p *Producer, sf *wire.SendFields, s *replSource) bool {
	if t.replDedup != nil {
		for _, c := range t.replicationClusters() {
			if c == s.cluster {
				return false
			}
		}
	}
	clusters := strings.Join(t.replicationClusters(), ",")
	p.cn.sendError(*sf, pb.ServerError_NotAllowedError, fmt.Sprintf(
		"topic %s does not replicate with cluster %s (its replication clusters: [%s])", t.fullName, s.cluster, clusters))
	return true
}
