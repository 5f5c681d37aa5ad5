package wire

import (
	"reflect"
	"testing"
)

// FuzzParseMarkers feeds the replicated subscription marker decoders:
// they never panic, and what decodes encodes to bytes that decode the same.
func FuzzParseMarkers(f *testing.F) {
	f.Add(SnapshotRequest{SnapshotID: "id", SourceCluster: "a"}.Marshal())
	f.Add(SnapshotResponse{SnapshotID: "id", Cluster: ClusterPosition{"b", MarkerPosition{1, 2}}, HasCluster: true}.Marshal())
	f.Add(Snapshot{SnapshotID: "id", Local: MarkerPosition{3, 4}, HasLocal: true, Clusters: []ClusterPosition{{"b", MarkerPosition{1, 2}}}}.Marshal())
	f.Add(SubscriptionUpdate{Subscription: "s", Clusters: []ClusterPosition{{"b", MarkerPosition{1, 2}}}}.Marshal())
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseSnapshotRequest(b); err == nil {
			if r2, err := ParseSnapshotRequest(r.Marshal()); err != nil || r2 != r {
				t.Fatalf("request %+v does not round-trip: %+v %v", r, r2, err)
			}
		}
		if r, err := ParseSnapshotResponse(b); err == nil {
			if r2, err := ParseSnapshotResponse(r.Marshal()); err != nil || r2 != r {
				t.Fatalf("response %+v does not round-trip: %+v %v", r, r2, err)
			}
		}
		if s, err := ParseSnapshot(b); err == nil {
			if s2, err := ParseSnapshot(s.Marshal()); err != nil || !reflect.DeepEqual(s2, s) {
				t.Fatalf("snapshot %+v does not round-trip: %+v %v", s, s2, err)
			}
		}
		if u, err := ParseSubscriptionUpdate(b); err == nil {
			if u2, err := ParseSubscriptionUpdate(u.Marshal()); err != nil || !reflect.DeepEqual(u2, u) {
				t.Fatalf("update %+v does not round-trip: %+v %v", u, u2, err)
			}
		}
	})
}
