package test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

func TestAdminTopicLifecycle(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	topics := admin.Topics()
	ns := newNamespace(t, admin)
	plain := "persistent://" + ns + "/plain"
	parted := "persistent://" + ns + "/parted"

	if err := topics.Create(topicName(t, plain), 0); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Create(topicName(t, plain), 0), 409, "create twice")
	if err := topics.Create(topicName(t, parted), 3); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Create(topicName(t, parted), 3), 409, "create partitioned twice")
	expectStatus(t, topics.Create(topicName(t, parted), 0), 409, "non-partitioned over a partitioned topic")
	expectStatus(t, topics.Create(topicName(t, plain), 2), 409, "partitioned over a non-partitioned topic")
	expectStatus(t, topics.Create(topicName(t, "persistent://"+ns+"/x-partition-0"), 0), 412, "a partition of nothing")
	expectStatus(t, topics.Create(topicName(t, "persistent://public/missing/t"), 0), 404, "in a missing namespace")

	md, err := topics.GetMetadata(topicName(t, parted))
	if err != nil || md.Partitions != 3 {
		t.Fatalf("metadata %+v %v", md, err)
	}
	if err := topics.Update(topicName(t, parted), 5); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Update(topicName(t, parted), 2), 422, "shrink")
	expectStatus(t, topics.Update(topicName(t, plain+"-none"), 2), 404, "update a missing partitioned topic")

	partitioned, nonPartitioned, err := topics.List(nsName(t, ns))
	if err != nil || fmt.Sprint(partitioned) != "["+parted+"]" || len(nonPartitioned) != 6 || !slices.Contains(nonPartitioned, plain) {
		t.Fatalf("list: %v %v %v", partitioned, nonPartitioned, err)
	}

	// Delete: refused while a producer is connected, unless forced.
	client := newClient(t, s.BrokerURL())
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: plain})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	expectStatus(t, topics.Delete(topicName(t, plain), false, true), 412, "delete with a producer")
	if err := topics.Delete(topicName(t, plain), true, true); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Delete(topicName(t, parted), false, true), 409, "delete a partitioned topic as non-partitioned")
	pp, err := client.CreateProducer(pulsar.ProducerOptions{Topic: parted})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Delete(topicName(t, parted), false, false), 412, "delete a partitioned topic with a producer")
	pp.Close()
	if err := topics.Delete(topicName(t, parted), false, false); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, topics.Delete(topicName(t, parted), false, false), 404, "delete a partitioned topic twice")
	adminEventually(t, "the deleted topics to leave the list", func() bool {
		partitioned, nonPartitioned, err := topics.List(nsName(t, ns))
		// The force-closed producer reconnects and recreates plain, empty.
		return err == nil && len(partitioned) == 0 && len(nonPartitioned) <= 1
	})

	// Lookup and unload.
	lookup, err := topics.Lookup(topicName(t, plain))
	if err != nil || lookup.BrokerURL == "" || lookup.HTTPURL != s.WebURL() {
		t.Fatalf("lookup %+v %v", lookup, err)
	}
	if err := topics.Unload(topicName(t, plain)); err != nil {
		t.Fatal(err)
	}
}

func TestAdminTopicStats(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	topics := admin.Topics()
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)

	_, err := topics.GetStats(tn)
	expectStatus(t, err, 404, "stats of a missing topic")

	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "prod", DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 10)
	msgs := receiveN(t, consumer, 10, 10*time.Second)
	for _, m := range msgs[:4] {
		consumer.Ack(m)
	}
	consumer.Ack(msgs[6]) // an ack hole
	// Rates are averaged over at least a second.
	time.Sleep(1100 * time.Millisecond)

	var st utils.TopicStats
	adminEventually(t, "the acks to reach the broker", func() bool {
		st, err = topics.GetStats(tn)
		return err == nil && st.Subscriptions["s"].MsgBacklog == 5
	})
	sub := st.Subscriptions["s"]
	if st.MsgCounterIn != 10 || st.MsgCounterOut != 10 || st.StorageSize <= 0 || st.MsgRateIn <= 0 || st.MsgThroughputIn <= 0 {
		t.Fatalf("topic stats %+v", st)
	}
	if len(st.Publishers) != 1 || st.Publishers[0].ProducerName != "prod" || st.Publishers[0].MsgRateIn <= 0 {
		t.Fatalf("publishers %+v", st.Publishers)
	}
	if sub.SubType != "Shared" || !sub.IsDurable || sub.UnAckedMessages != 5 || len(sub.Consumers) != 1 ||
		sub.Consumers[0].UnAckedMessages != 5 || sub.MsgOutCounter != 10 || sub.MsgRateOut <= 0 || sub.NonContiguousDeletedMessagesRanges != 1 {
		t.Fatalf("subscription stats %+v", sub)
	}

	internal, err := topics.GetInternalStats(tn)
	if err != nil {
		t.Fatal(err)
	}
	lid := ids[0].LedgerID()
	cursor := internal.Cursors["s"]
	if internal.NumberOfEntries != 10 || internal.EntriesAddedCounter != 10 || internal.TotalSize <= 0 || len(internal.Ledgers) != 1 ||
		internal.LastConfirmedEntry != fmt.Sprintf("%d:9", lid) || internal.State != "LedgerOpened" {
		t.Fatalf("internal stats %+v", internal)
	}
	if cursor.MarkDeletePosition != fmt.Sprintf("%d:3", lid) || cursor.ReadPosition != fmt.Sprintf("%d:10", lid) ||
		cursor.IndividuallyDeletedMessages != fmt.Sprintf("[(%d:5..%d:6]]", lid, lid) || cursor.TotalNonContiguousDeletedMessagesRange != 1 {
		t.Fatalf("cursor %+v", cursor)
	}

	last, err := topics.GetLastMessageID(tn)
	if err != nil || last.LedgerID != lid || last.EntryID != ids[9].EntryID() || last.PartitionIndex != -1 {
		t.Fatalf("last message id %+v %v", last, err)
	}

	// Partitioned stats sum the partitions.
	parted := uniqueTopic(t)
	if err := topics.Create(topicName(t, parted), 2); err != nil {
		t.Fatal(err)
	}
	pp, err := client.CreateProducer(pulsar.ProducerOptions{Topic: parted, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	for i := 0; i < 6; i++ {
		if _, err := pp.Send(context.Background(), &pulsar.ProducerMessage{Key: fmt.Sprint(i), Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := topics.GetPartitionedStats(topicName(t, parted), true)
	if err != nil || ps.Metadata.Partitions != 2 || len(ps.Partitions) != 2 || ps.StorageSize <= 0 || len(ps.Publishers) != 2 {
		t.Fatalf("partitioned stats %+v %v", ps, err)
	}
	var in int64
	for _, p := range ps.Partitions {
		in += p.MsgCounterIn
	}
	if in != 6 {
		t.Fatalf("partitions took %d messages, want 6", in)
	}
	_, err = topics.GetStats(topicName(t, parted))
	expectStatus(t, err, 405, "stats of a partitioned topic's name")
	_, err = topics.GetPartitionedStats(tn, false)
	expectStatus(t, err, 404, "partitioned stats of a non-partitioned topic")

	// Non-persistent topics have stats but no ledger.
	np := "non-persistent://public/default/np" + fmt.Sprint(time.Now().UnixNano())
	npp, err := client.CreateProducer(pulsar.ProducerOptions{Topic: np})
	if err != nil {
		t.Fatal(err)
	}
	defer npp.Close()
	if st, err := topics.GetStats(topicName(t, np)); err != nil || len(st.Publishers) != 1 {
		t.Fatalf("non-persistent stats %+v %v", st, err)
	}
	_, err = topics.GetInternalStats(topicName(t, np))
	expectStatus(t, err, 405, "internal stats of a non-persistent topic")
}

func TestAdminMessagesByIDAndTime(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	first := sendN(t, producer, 0, 3)
	// Publish times are in milliseconds: let the next messages be later.
	time.Sleep(20 * time.Millisecond)
	ts := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	id, err := producer.Send(context.Background(), &pulsar.ProducerMessage{
		Payload: []byte("with properties"), Key: "k1", Properties: map[string]string{"mixedCase": "v", "other": "w"}})
	if err != nil {
		t.Fatal(err)
	}

	got, err := admin.Topics().GetMessageID(tn, ts)
	if err != nil || got.LedgerID != id.LedgerID() || got.EntryID != id.EntryID() {
		t.Fatalf("message id at %d: %+v %v, want %v", ts, got, err, id)
	}
	if got, err := admin.Topics().GetMessageID(tn, 0); err != nil || got.EntryID != first[0].EntryID() {
		t.Fatalf("message id at 0: %+v %v", got, err)
	}
	_, err = admin.Topics().GetMessageID(tn, time.Now().Add(time.Hour).UnixMilli())
	expectStatus(t, err, 404, "message id after the last message")

	ms, err := admin.Subscriptions().GetMessagesByID(tn, id.LedgerID(), id.EntryID())
	if err != nil || len(ms) != 1 || string(ms[0].Payload) != "with properties" {
		t.Fatalf("message by id %+v %v", ms, err)
	}
	m := ms[0]
	if m.Properties["mixedCase"] != "v" || m.Properties["other"] != "w" || m.Properties["publish-time"] == "" {
		t.Fatalf("properties %v", m.Properties)
	}
	if m.MessageID.LedgerID != id.LedgerID() || m.MessageID.EntryID != id.EntryID() {
		t.Fatalf("message id %+v", m.MessageID)
	}
	_, err = admin.Subscriptions().GetMessagesByID(tn, id.LedgerID()+1, 0)
	expectStatus(t, err, 404, "message of another ledger")
	_, err = admin.Subscriptions().GetMessagesByID(tn, id.LedgerID(), 99)
	expectStatus(t, err, 404, "message past the end")
	expectHTTP(t, "GET", restTopic(s.WebURL(), topic)+"/ledger/x/entry/0", "", 400)
	expectHTTP(t, "GET", restTopic(s.WebURL(), topic)+"/messageid/yesterday", "", 400)
}

func TestAdminTerminate(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	tn := topicName(t, topic)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ids := sendN(t, producer, 0, 3)

	last, err := admin.Topics().Terminate(tn)
	if err != nil || last.LedgerID != ids[2].LedgerID() || last.EntryID != ids[2].EntryID() {
		t.Fatalf("terminate: %+v %v, want %v", last, err, ids[2])
	}
	// The producer is closed; its reconnection is refused and it gives up.
	adminEventually(t, "the producer to learn the topic is terminated", func() bool {
		_, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("late")})
		return err != nil && (errors.Is(err, pulsar.ErrTopicTerminated) || errors.Is(err, pulsar.ErrProducerClosed))
	})
	_, err = client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err == nil || !strings.Contains(err.Error(), "TopicTerminated") {
		t.Fatalf("new producer on a terminated topic: %v", err)
	}
	// Termination is durable: an unloaded topic stays terminated.
	if err := admin.Topics().Unload(tn); err != nil {
		t.Fatal(err)
	}
	if again, err := admin.Topics().Terminate(tn); err != nil || again != last {
		t.Fatalf("terminate again: %+v %v", again, err)
	}
	internal, err := admin.Topics().GetInternalStats(tn)
	if err != nil || internal.State != "Terminated" || internal.NumberOfEntries != 3 {
		t.Fatalf("internal stats %+v %v", internal, err)
	}
	// Readers still read everything.
	reader, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := reader.Next(ctx)
		cancel()
		if err != nil || string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	parted := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, parted), 2); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Topics().Terminate(topicName(t, parted))
	expectStatus(t, err, 405, "terminate a partitioned topic's name")
	_, err = admin.Topics().Terminate(topicName(t, uniqueTopic(t)))
	expectStatus(t, err, 404, "terminate a missing topic")
}
