package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestMarkerRoundTrip(t *testing.T) {
	req := SnapshotRequest{SnapshotID: "id-1", SourceCluster: "a"}
	if got, err := ParseSnapshotRequest(req.Marshal()); err != nil || got != req {
		t.Fatalf("request: %+v %v", got, err)
	}
	resp := SnapshotResponse{SnapshotID: "id-1", Cluster: ClusterPosition{"b", MarkerPosition{7, 42}}, HasCluster: true}
	if got, err := ParseSnapshotResponse(resp.Marshal()); err != nil || got != resp {
		t.Fatalf("response: %+v %v", got, err)
	}
	snap := Snapshot{SnapshotID: "id-1", Local: MarkerPosition{3, 9}, HasLocal: true,
		Clusters: []ClusterPosition{{"b", MarkerPosition{7, 42}}, {"c", MarkerPosition{1 << 40, 0}}}}
	if got, err := ParseSnapshot(snap.Marshal()); err != nil || !reflect.DeepEqual(got, snap) {
		t.Fatalf("snapshot: %+v %v", got, err)
	}
	up := SubscriptionUpdate{Subscription: "rs", Clusters: []ClusterPosition{{"b", MarkerPosition{7, 42}}}}
	if got, err := ParseSubscriptionUpdate(up.Marshal()); err != nil || !reflect.DeepEqual(got, up) {
		t.Fatalf("update: %+v %v", got, err)
	}
}

// The bytes protoc's encoding of PulsarMarkers.proto gives (field numbers
// and nesting written out by hand from the .proto), so a Pulsar broker
// reads ours and we read its.
func TestMarkerGoldenBytes(t *testing.T) {
	up := SubscriptionUpdate{Subscription: "rs", Clusters: []ClusterPosition{{"b", MarkerPosition{7, 42}}}}
	want := []byte{
		0x0a, 2, 'r', 's', // subscription_name = 1
		0x12, 9, // clusters = 2 (ClusterMessageId, 9 bytes)
		0x0a, 1, 'b', // cluster = 1
		0x12, 4, 0x08, 7, 0x10, 42, // message_id = 2 {ledger_id = 1, entry_id = 2}
	}
	if got := up.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("update bytes % x, want % x", got, want)
	}
	req := SnapshotRequest{SnapshotID: "x", SourceCluster: "a"}
	if got := req.Marshal(); !bytes.Equal(got, []byte{0x0a, 1, 'x', 0x12, 1, 'a'}) {
		t.Fatalf("request bytes % x", got)
	}
	snap := Snapshot{SnapshotID: "x", Local: MarkerPosition{1, 2}, HasLocal: true}
	if got := snap.Marshal(); !bytes.Equal(got, []byte{0x0a, 1, 'x', 0x12, 4, 0x08, 1, 0x10, 2}) {
		t.Fatalf("snapshot bytes % x", got)
	}
}

func TestMarkerRequiredFields(t *testing.T) {
	for name, f := range map[string]func() error{
		"request without id":  func() error { _, err := ParseSnapshotRequest([]byte{0x12, 1, 'a'}); return err },
		"response without id": func() error { _, err := ParseSnapshotResponse(nil); return err },
		"snapshot without id": func() error { _, err := ParseSnapshot(nil); return err },
		"update without sub":  func() error { _, err := ParseSubscriptionUpdate(nil); return err },
		"cluster without message": func() error {
			_, err := ParseSubscriptionUpdate([]byte{0x0a, 1, 's', 0x12, 3, 0x0a, 1, 'b'})
			return err
		},
		"message id without entry": func() error { _, err := ParseSnapshot([]byte{0x0a, 1, 'x', 0x12, 2, 0x08, 1}); return err },
		"truncated length":         func() error { _, err := ParseSnapshotRequest([]byte{0x0a, 5, 'x'}); return err },
	} {
		if err := f(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestBuildMarker(t *testing.T) {
	hp := BuildMarker(MarkerSnapshotResponse, []string{"a"}, 1234, SnapshotRequest{SnapshotID: "x"}.Marshal())
	if err := VerifyChecksum(hp); err != nil {
		t.Fatal(err)
	}
	meta, payload, err := SplitPayload(hp)
	if err != nil {
		t.Fatal(err)
	}
	var info MetadataInfo
	if err := ParseMetadata(meta, &info); err != nil {
		t.Fatal(err)
	}
	if !info.HasMarkerType || info.MarkerType != MarkerSnapshotResponse || string(info.ProducerName) != MarkerProducerName || info.PublishTime != 1234 {
		t.Fatalf("metadata %+v", info)
	}
	if r, err := ParseSnapshotRequest(payload); err != nil || r.SnapshotID != "x" {
		t.Fatalf("payload %+v %v", r, err)
	}
}
