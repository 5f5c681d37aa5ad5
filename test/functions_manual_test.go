package test

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// With processingGuarantees MANUAL the function acknowledges its inputs
// itself (function.Ack): what it acks leaves the backlog, what it does not
// stays unacknowledged although its output is published.
func TestFunctionManualAck(t *testing.T) {
	s := startFunctionsServer(t)
	admin := newAdmin(t, s)
	c := newClient(t, s.BrokerURL())
	in, out := uniqueTopic(t), uniqueTopic(t)+"-out"
	outCons := subscribeEarliest(t, c, out)
	produceStrings(t, c, in, "ack", "plain", "ack")
	cfg := functionConfig(t, "manual", in, out)
	cfg.ProcessingGuarantees = "MANUAL"
	if err := admin.Functions().CreateFunc(cfg, moduleFile(t, "../internal/functions/wasm/testdata/hostile")); err != nil {
		t.Fatal(err)
	}
	if m := receiveN(t, outCons, 1, 60*time.Second); string(m[0].Payload()) != "plain" {
		t.Fatalf("output %q", m[0].Payload())
	}
	tn, err := utils.GetTopicName(in)
	if err != nil {
		t.Fatal(err)
	}
	adminEventually(t, "the two acked inputs leave the backlog", func() bool {
		return backlogOf(t, admin, *tn, "public/default/manual") == 1
	})
	got, err := admin.Functions().GetFunction("public", "default", "manual")
	if err != nil || got.ProcessingGuarantees != "MANUAL" {
		t.Fatalf("get: %+v, %v", got, err)
	}
}
