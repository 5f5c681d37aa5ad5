package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Markers are server-only entries written into a topic (MessageMetadata
// marker_type set), never delivered to clients. These are the replicated
// subscription markers of Pulsar's PulsarMarkers.proto (PIP-33): the same
// type values and field numbers, so that a Pulsar cluster understands ours.
const (
	MarkerSnapshotRequest  int32 = 10 // REPLICATED_SUBSCRIPTION_SNAPSHOT_REQUEST
	MarkerSnapshotResponse int32 = 11 // REPLICATED_SUBSCRIPTION_SNAPSHOT_RESPONSE
	MarkerSnapshot         int32 = 12 // REPLICATED_SUBSCRIPTION_SNAPSHOT
	MarkerUpdate           int32 = 13 // REPLICATED_SUBSCRIPTION_UPDATE
)

// MarkerProducerName is the producer_name of markers, Pulsar's.
const MarkerProducerName = "pulsar.marker"

// MarkerPosition is MarkersMessageIdData: a position in one cluster.
type MarkerPosition struct {
	LedgerID, EntryID uint64
}

// ClusterPosition is ClusterMessageId.
type ClusterPosition struct {
	Cluster string
	Pos     MarkerPosition
}

// SnapshotRequest is ReplicatedSubscriptionsSnapshotRequest.
type SnapshotRequest struct {
	SnapshotID    string
	SourceCluster string
}

// SnapshotResponse is ReplicatedSubscriptionsSnapshotResponse.
type SnapshotResponse struct {
	SnapshotID string
	Cluster    ClusterPosition
	HasCluster bool
}

// Snapshot is ReplicatedSubscriptionsSnapshot: the local position and the
// remote clusters' positions it corresponds to.
type Snapshot struct {
	SnapshotID string
	Local      MarkerPosition
	HasLocal   bool
	Clusters   []ClusterPosition
}

// SubscriptionUpdate is ReplicatedSubscriptionsUpdate.
type SubscriptionUpdate struct {
	Subscription string
	Clusters     []ClusterPosition
}

// Field numbers of PulsarMarkers.proto.
const (
	fSnapshotID       = 1 // of request, response and snapshot
	fRequestSource    = 2
	fResponseCluster  = 2
	fSnapshotLocal    = 2
	fSnapshotClusters = 3
	fUpdateSub        = 1
	fUpdateClusters   = 2
	fCMIDCluster      = 1
	fCMIDMessageID    = 2
	fMIDLedger        = 1
	fMIDEntry         = 2
)

func appendMarkerPosition(b []byte, num protowire.Number, p MarkerPosition) []byte {
	n := protowire.SizeTag(fMIDLedger) + protowire.SizeVarint(p.LedgerID) + protowire.SizeTag(fMIDEntry) + protowire.SizeVarint(p.EntryID)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, fMIDLedger, protowire.VarintType)
	b = protowire.AppendVarint(b, p.LedgerID)
	b = protowire.AppendTag(b, fMIDEntry, protowire.VarintType)
	return protowire.AppendVarint(b, p.EntryID)
}

func appendClusterPosition(b []byte, num protowire.Number, c ClusterPosition) []byte {
	inner := protowire.AppendTag(nil, fCMIDCluster, protowire.BytesType)
	inner = protowire.AppendString(inner, c.Cluster)
	inner = appendMarkerPosition(inner, fCMIDMessageID, c.Pos)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// Marshal encodes the request.
func (r SnapshotRequest) Marshal() []byte {
	b := appendString(nil, fSnapshotID, r.SnapshotID)
	if r.SourceCluster != "" {
		b = appendString(b, fRequestSource, r.SourceCluster)
	}
	return b
}

// Marshal encodes the response.
func (r SnapshotResponse) Marshal() []byte {
	b := appendString(nil, fSnapshotID, r.SnapshotID)
	if r.HasCluster {
		b = appendClusterPosition(b, fResponseCluster, r.Cluster)
	}
	return b
}

// Marshal encodes the snapshot.
func (s Snapshot) Marshal() []byte {
	b := appendString(nil, fSnapshotID, s.SnapshotID)
	if s.HasLocal {
		b = appendMarkerPosition(b, fSnapshotLocal, s.Local)
	}
	for _, c := range s.Clusters {
		b = appendClusterPosition(b, fSnapshotClusters, c)
	}
	return b
}

// Marshal encodes the update.
func (u SubscriptionUpdate) Marshal() []byte {
	b := appendString(nil, fUpdateSub, u.Subscription)
	for _, c := range u.Clusters {
		b = appendClusterPosition(b, fUpdateClusters, c)
	}
	return b
}

// walkFields calls fn for each field of a message; fn gets the varint value
// or the bytes of the field by its wire type and must not keep them. Fields
// of other wire types are skipped, as protobuf does for unknown fields.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n, err := consumeVarint(b)
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			b = b[n:]
			if err := fn(num, typ, v, nil); err != nil {
				return err
			}
		case protowire.BytesType:
			v, n, err := consumeBytes(b)
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			b = b[n:]
			if err := fn(num, typ, 0, v); err != nil {
				return err
			}
		default:
			n, err := skipField(num, typ, b)
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			b = b[n:]
		}
	}
	return nil
}

func parseMarkerPosition(b []byte) (MarkerPosition, error) {
	var p MarkerPosition
	var hasL, hasE bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
		switch {
		case num == fMIDLedger && typ == protowire.VarintType:
			p.LedgerID, hasL = v, true
		case num == fMIDEntry && typ == protowire.VarintType:
			p.EntryID, hasE = v, true
		}
		return nil
	})
	if err == nil && (!hasL || !hasE) {
		err = fmt.Errorf("marker message id without ledger_id or entry_id: %w", ErrMalformed)
	}
	return p, err
}

func parseClusterPosition(b []byte) (ClusterPosition, error) {
	var c ClusterPosition
	var hasC, hasM bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fCMIDCluster:
			c.Cluster, hasC = string(bs), true
		case fCMIDMessageID:
			p, err := parseMarkerPosition(bs)
			if err != nil {
				return err
			}
			c.Pos, hasM = p, true
		}
		return nil
	})
	if err == nil && (!hasC || !hasM) {
		err = fmt.Errorf("cluster message id without cluster or message_id: %w", ErrMalformed)
	}
	return c, err
}

// ParseSnapshotRequest decodes a snapshot request marker's payload.
func ParseSnapshotRequest(b []byte) (SnapshotRequest, error) {
	var r SnapshotRequest
	var hasID bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fSnapshotID:
			r.SnapshotID, hasID = string(bs), true
		case fRequestSource:
			r.SourceCluster = string(bs)
		}
		return nil
	})
	if err == nil && !hasID {
		err = fmt.Errorf("snapshot request without snapshot_id: %w", ErrMalformed)
	}
	return r, err
}

// ParseSnapshotResponse decodes a snapshot response marker's payload.
func ParseSnapshotResponse(b []byte) (SnapshotResponse, error) {
	var r SnapshotResponse
	var hasID bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fSnapshotID:
			r.SnapshotID, hasID = string(bs), true
		case fResponseCluster:
			c, err := parseClusterPosition(bs)
			if err != nil {
				return err
			}
			r.Cluster, r.HasCluster = c, true
		}
		return nil
	})
	if err == nil && !hasID {
		err = fmt.Errorf("snapshot response without snapshot_id: %w", ErrMalformed)
	}
	return r, err
}

// ParseSnapshot decodes a snapshot marker's payload.
func ParseSnapshot(b []byte) (Snapshot, error) {
	var s Snapshot
	var hasID bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fSnapshotID:
			s.SnapshotID, hasID = string(bs), true
		case fSnapshotLocal:
			p, err := parseMarkerPosition(bs)
			if err != nil {
				return err
			}
			s.Local, s.HasLocal = p, true
		case fSnapshotClusters:
			c, err := parseClusterPosition(bs)
			if err != nil {
				return err
			}
			s.Clusters = append(s.Clusters, c)
		}
		return nil
	})
	if err == nil && !hasID {
		err = fmt.Errorf("snapshot without snapshot_id: %w", ErrMalformed)
	}
	return s, err
}

// ParseSubscriptionUpdate decodes an update marker's payload.
func ParseSubscriptionUpdate(b []byte) (SubscriptionUpdate, error) {
	var u SubscriptionUpdate
	var hasSub bool
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fUpdateSub:
			u.Subscription, hasSub = string(bs), true
		case fUpdateClusters:
			c, err := parseClusterPosition(bs)
			if err != nil {
				return err
			}
			u.Clusters = append(u.Clusters, c)
		}
		return nil
	})
	if err == nil && !hasSub {
		err = fmt.Errorf("subscription update without subscription_name: %w", ErrMalformed)
	}
	return u, err
}

// BuildMarker returns a marker entry as Pulsar's Markers writes one:
// producer "pulsar.marker", sequence id 0, the publish time, marker_type,
// and replicate_to when restricted to some clusters (none: replicated to
// every remote).
func BuildMarker(markerType int32, replicateTo []string, publishTimeMillis uint64, payload []byte) []byte {
	name := MarkerProducerName
	var seq uint64
	return BuildPayload(&pb.MessageMetadata{
		ProducerName: &name,
		SequenceId:   &seq,
		PublishTime:  &publishTimeMillis,
		ReplicateTo:  replicateTo,
		MarkerType:   &markerType,
	}, payload)
}

// IsReplicatedSubscriptionMarker reports whether a marker type is one of
// the replicated subscription markers.
func IsReplicatedSubscriptionMarker(t int32) bool {
	return t >= MarkerSnapshotRequest && t <= MarkerUpdate
}
