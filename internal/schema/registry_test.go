package schema

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newRegistry(t *testing.T) (*Registry, *Metrics) {
	t.Helper()
	st, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := NewMetrics(prometheus.NewRegistry())
	return NewRegistry(&meta.Resources{Store: st}, m), m
}

func TestRegistryProducerRules(t *testing.T) {
	r, m := newRegistry(t)
	ctx := context.Background()
	topic, _ := naming.ParseTopic("persistent://public/default/reg")
	pol := Policy{Strategy: Full, AutoUpdate: true}
	v0 := avroInfo(rec(fa))
	if v, err := r.ForProducer(ctx, topic.Partition(0), &v0, pol); err != nil || v != 0 {
		t.Fatalf("first schema: %d %v", v, err)
	}
	if v, err := r.ForProducer(ctx, topic.Partition(1), &v0, pol); err != nil || v != 0 {
		t.Fatalf("same schema on another partition: %d %v", v, err)
	}
	if v, err := r.ForProducer(ctx, topic, nil, pol); err != nil || v != NoVersion {
		t.Fatalf("no schema: %d %v", v, err)
	}
	pol.ValidationEnforced = true
	if _, err := r.ForProducer(ctx, topic, &Info{Type: Bytes}, pol); !IsIncompatible(err) {
		t.Fatalf("BYTES with validation enforced: %v", err)
	}
	pol.ValidationEnforced, pol.AutoUpdate = false, false
	v1 := avroInfo(rec(fa, fbDefault))
	if _, err := r.ForProducer(ctx, topic, &v1, pol); err == nil || !strings.Contains(err.Error(), "auto updating is disabled") {
		t.Fatalf("new version without auto update: %v", err)
	}
	if _, err := r.ForProducer(ctx, topic, &Info{Type: Avro, Data: []byte("{")}, pol); !IsInvalid(err) {
		t.Fatalf("invalid Avro: %v", err)
	}
	if v, err := r.Register(ctx, topic, v1, Full); err != nil || v != 1 {
		t.Fatalf("upload: %d %v", v, err)
	}
	if got := testutil.ToFloat64(m.registrations.WithLabelValues("created")); got != 2 {
		t.Fatalf("created registrations %v", got)
	}
	if got := testutil.ToFloat64(m.incompatible); got != 2 {
		t.Fatalf("incompatible %v", got)
	}
	// Consumers: a reader of the latest version, the registered versions.
	if err := r.ForConsumer(ctx, topic, &v0, pol, false); err != nil {
		t.Fatalf("registered version: %v", err)
	}
	bad := avroInfo(rec(fa, fbNoDef, `{"name":"z","type":"int"}`))
	if err := r.ForConsumer(ctx, topic, &bad, pol, true); !IsIncompatible(err) {
		t.Fatalf("reader needing a missing field: %v", err)
	}
	// Delete: a marker hides the versions; force removes them.
	if _, err := r.Delete(ctx, topic, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Version(ctx, topic, 0); !errors.Is(err, ErrNoSchema) {
		t.Fatalf("version 0 after delete: %v", err)
	}
	if _, err := r.Latest(ctx, topic); !errors.Is(err, ErrNoSchema) {
		t.Fatalf("latest after delete: %v", err)
	}
	other, _ := naming.ParseTopic("persistent://public/default/reg-idle")
	if err := r.ForConsumer(ctx, other, &v0, Policy{Strategy: Full, AutoUpdate: true}, false); !IsIncompatible(err) {
		t.Fatalf("consumer schema on a busy schema-less topic: %v", err)
	}
	if err := r.ForConsumer(ctx, other, &v0, Policy{Strategy: Full, AutoUpdate: true}, true); err != nil {
		t.Fatalf("consumer schema on an idle topic: %v", err)
	}
	if rec, err := r.Latest(ctx, other); err != nil || rec.Type != "AVRO" {
		t.Fatalf("consumer's schema not registered: %+v %v", rec, err)
	}
}
