package test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

func adminID(id pulsar.MessageID) utils.MessageID {
	return utils.MessageID{LedgerID: id.LedgerID(), EntryID: id.EntryID(), PartitionIndex: -1}
}

// backlogOf reads a subscription's backlog from the topic stats.
func backlogOf(t *testing.T, admin pulsaradmin.Client, tn utils.TopicName, sub string) int64 {
	t.Helper()
	st, err := admin.Topics().GetStats(tn)
	if err != nil {
		t.Fatal(err)
	}
	ss, ok := st.Subscriptions[sub]
	if !ok {
		t.Fatalf("no subscription %s in %v", sub, st.Subscriptions)
	}
	return ss.MsgBacklog
}

func peekPayloads(t *testing.T, admin pulsaradmin.Client, tn utils.TopicName, sub string, n int) string {
	t.Helper()
	msgs, err := admin.Subscriptions().PeekMessages(tn, sub, n)
	if err != nil {
		t.Fatalf("peek %d on %s: %v", n, sub, err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return fmt.Sprint(out)
}

func TestAdminSubscriptionPositions(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	subs := admin.Subscriptions()
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 10)

	for name, at := range map[string]utils.MessageID{"at5": adminID(ids[5]), "earliest": utils.Earliest, "latest": utils.Latest} {
		if err := subs.Create(tn, name, at); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	expectStatus(t, subs.Create(tn, "at5", utils.Latest), 409, "create twice")
	list, err := subs.List(tn)
	if err != nil || fmt.Sprint(list) != "[at5 earliest latest]" {
		t.Fatalf("subscriptions %v %v", list, err)
	}
	for name, want := range map[string]int64{"at5": 5, "earliest": 10, "latest": 0} {
		if got := backlogOf(t, admin, tn, name); got != want {
			t.Errorf("backlog of %s: %d, want %d", name, got, want)
		}
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "at5"})
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(receiveN(t, c, 5, 10*time.Second)); got != "[5 6 7 8 9]" {
		t.Fatalf("at5 delivered %s", got)
	}
	c.Close()

	// Peek does not move the cursor; skip does.
	if got := peekPayloads(t, admin, tn, "earliest", 3); got != "[0 1 2]" {
		t.Fatalf("peek %s", got)
	}
	if err := subs.SkipMessages(tn, "earliest", 3); err != nil {
		t.Fatal(err)
	}
	if got := peekPayloads(t, admin, tn, "earliest", 2); got != "[3 4]" {
		t.Fatalf("peek after skip %s", got)
	}
	if got := backlogOf(t, admin, tn, "earliest"); got != 7 {
		t.Fatalf("backlog after skipping 3: %d", got)
	}
	_, err = subs.PeekMessages(tn, "earliest", 8)
	expectStatus(t, err, 404, "peek past the backlog")
	// Pulsar creates a peeked subscription the topic lacks, at the earliest entry.
	if got := peekPayloads(t, admin, tn, "peeked", 2); got != "[0 1]" {
		t.Fatalf("peek on a new subscription %s", got)
	}
	if got := backlogOf(t, admin, tn, "peeked"); got != 10 {
		t.Fatalf("backlog of the peeked subscription: %d", got)
	}

	if err := subs.ClearBacklog(tn, "earliest"); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "earliest"); got != 0 {
		t.Fatalf("backlog after skip_all: %d", got)
	}
	if err := subs.ResetCursorToMessageID(tn, "earliest", adminID(ids[2])); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "earliest"); got != 8 {
		t.Fatalf("backlog after reset to 2: %d", got)
	}
	expectHTTP(t, "POST", restTopic(s.WebURL(), topic)+"/subscription/earliest/resetcursor",
		fmt.Sprintf(`{"ledgerId": %d, "entryId": 2, "isExcluded": true}`, ids[2].LedgerID()), 204)
	if got := backlogOf(t, admin, tn, "earliest"); got != 7 {
		t.Fatalf("backlog after an exclusive reset to 2: %d", got)
	}
	if err := subs.ResetCursorToTimestamp(tn, "latest", 0); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "latest"); got != 10 {
		t.Fatalf("backlog after reset to time 0: %d", got)
	}

	// Expiry: nothing is an hour old, everything is older than 0 seconds.
	if err := subs.ExpireMessages(tn, "latest", 3600); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "latest"); got != 10 {
		t.Fatalf("backlog after expiring an hour: %d", got)
	}
	if err := subs.ExpireMessages(tn, "latest", 0); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "latest"); got != 0 {
		t.Fatalf("backlog after expiring everything: %d", got)
	}
	if err := subs.ExpireAllMessages(tn, 0); err != nil {
		t.Fatal(err)
	}
	if got := backlogOf(t, admin, tn, "at5"); got != 0 {
		t.Fatalf("backlog of at5 after expiring all subscriptions: %d", got)
	}

	// Missing things.
	expectStatus(t, subs.SkipMessages(tn, "nope", 1), 404, "skip on a missing subscription")
	expectStatus(t, subs.ClearBacklog(topicName(t, uniqueTopic(t)), "s"), 404, "skip_all on a missing topic")
	_, err = subs.List(topicName(t, uniqueTopic(t)))
	expectStatus(t, err, 404, "subscriptions of a missing topic")
}

func TestAdminSubscriptionDelete(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	subs := admin.Subscriptions()
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)

	if err := admin.Topics().Create(tn, 0); err != nil {
		t.Fatal(err)
	}
	if err := subs.Create(tn, "idle", utils.Latest); err != nil {
		t.Fatal(err)
	}
	if err := subs.Delete(tn, "idle"); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, subs.Delete(tn, "idle"), 404, "delete twice")

	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "busy",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sendN(t, producer, 0, 4)
	receiveN(t, consumer, 4, 10*time.Second) // delivered, not acked
	expectStatus(t, subs.Delete(tn, "busy"), 412, "delete with a consumer")
	if got := backlogOf(t, admin, tn, "busy"); got != 4 {
		t.Fatalf("backlog kept after the refused delete: %d", got)
	}
	if err := subs.ForceDelete(tn, "busy"); err != nil {
		t.Fatal(err)
	}
	// The closed consumer subscribes again and so creates the subscription
	// anew, at its initial position; the old cursor and its backlog are gone.
	adminEventually(t, "the subscription to be gone or recreated", func() bool {
		list, err := subs.List(tn)
		if err != nil {
			return false
		}
		if !slices.Contains(list, "busy") {
			return true
		}
		st, err := admin.Topics().GetStats(tn)
		return err == nil && st.Subscriptions["busy"].UnAckedMessages == 4 && len(st.Subscriptions["busy"].Consumers) == 1
	})
}

func TestAdminPartitionedSubscriptions(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	subs := admin.Subscriptions()
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)
	if err := admin.Topics().Create(tn, 3); err != nil {
		t.Fatal(err)
	}
	if err := subs.Create(tn, "s", utils.Earliest); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		list, err := subs.List(topicName(t, fmt.Sprintf("%s-partition-%d", topic, i)))
		if err != nil || fmt.Sprint(list) != "[s]" {
			t.Fatalf("subscriptions of partition %d: %v %v", i, list, err)
		}
	}
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := 0; i < 9; i++ {
		if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Key: fmt.Sprint("k", i), Payload: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := admin.Topics().GetPartitionedStats(tn, false)
	if err != nil || ps.Subscriptions["s"].MsgBacklog != 9 {
		t.Fatalf("partitioned stats %+v %v", ps.Subscriptions, err)
	}
	_, err = subs.PeekMessages(tn, "s", 1)
	expectStatus(t, err, 405, "peek on a partitioned topic's name")
	expectStatus(t, subs.ResetCursorToMessageID(tn, "s", utils.Earliest), 405, "reset to an id without a partition")
	if err := subs.ClearBacklog(tn, "s"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := admin.Topics().GetPartitionedStats(tn, false); ps.Subscriptions["s"].MsgBacklog != 0 {
		t.Fatalf("backlog after skip_all: %+v", ps.Subscriptions["s"])
	}
	if err := subs.ResetCursorToTimestamp(tn, "s", 0); err != nil {
		t.Fatal(err)
	}
	if ps, _ := admin.Topics().GetPartitionedStats(tn, false); ps.Subscriptions["s"].MsgBacklog != 9 {
		t.Fatalf("backlog after reset to time 0: %+v", ps.Subscriptions["s"])
	}
	if err := subs.Delete(tn, "s"); err != nil {
		t.Fatal(err)
	}
	if list, err := subs.List(tn); err != nil || len(list) != 0 {
		t.Fatalf("subscriptions after delete: %v %v", list, err)
	}
}

// TestAdminPeekBatchesAndCompression: peek returns each message of a batch,
// decompressed, with its properties, as pulsaradmin decodes Pulsar's answer.
func TestAdminPeekBatchesAndCompression(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	for name, codec := range map[string]pulsar.CompressionType{"none": pulsar.NoCompression, "lz4": pulsar.LZ4, "zlib": pulsar.ZLib, "zstd": pulsar.ZSTD} {
		t.Run(name, func(t *testing.T) {
			topic := uniqueTopic(t)
			tn := topicName(t, topic)
			if err := admin.Subscriptions().Create(tn, "s", utils.Latest); err != nil {
				t.Fatal(err)
			}
			producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: codec,
				BatchingMaxMessages: 3, BatchingMaxPublishDelay: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			done := make(chan error, 3)
			for i := 0; i < 3; i++ {
				producer.SendAsync(context.Background(), &pulsar.ProducerMessage{
					Payload:    []byte(fmt.Sprintf("batched message %d, long enough to compress well %d", i, i)),
					Properties: map[string]string{"n": fmt.Sprint(i)},
				}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { done <- err })
			}
			if err := producer.FlushWithCtx(context.Background()); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			msgs, err := admin.Subscriptions().PeekMessages(tn, "s", 3)
			if err != nil || len(msgs) != 3 {
				t.Fatalf("peek: %d messages, %v", len(msgs), err)
			}
			for i, m := range msgs {
				if want := fmt.Sprintf("batched message %d, long enough to compress well %d", i, i); string(m.Payload) != want {
					t.Fatalf("message %d: %q", i, m.Payload)
				}
				if m.MessageID.BatchIndex != i || m.MessageID.EntryID != 0 {
					t.Fatalf("message %d id %+v", i, m.MessageID)
				}
			}
			if msgs[2].Properties["n"] != "2" {
				t.Fatalf("properties %v", msgs[2].Properties)
			}
		})
	}
}
