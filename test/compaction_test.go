package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/messagebus/messagebus/server"
)

// compactAndWait triggers a compaction and waits for it to end in SUCCESS.
func compactAndWait(t *testing.T, admin pulsaradmin.Client, topic string) {
	t.Helper()
	tn := topicName(t, topic)
	if err := admin.Topics().Compact(tn); err != nil {
		t.Fatalf("compact %s: %v", topic, err)
	}
	waitCompaction(t, admin, topic, utils.SUCCESS)
}

func waitCompaction(t *testing.T, admin pulsaradmin.Client, topic string, want utils.Status) utils.LongRunningProcessStatus {
	t.Helper()
	tn := topicName(t, topic)
	var st utils.LongRunningProcessStatus
	adminEventually(t, "compaction of "+topic+" to end", func() bool {
		var err error
		st, err = admin.Topics().CompactStatus(tn)
		if err != nil {
			t.Fatal(err)
		}
		return st.Status != utils.RUNNING
	})
	if st.Status != want {
		t.Fatalf("compaction of %s ended %s (%q), want %s", topic, st.Status, st.LastError, want)
	}
	return st
}

// readAll reads a reader to its end (HasNext false).
func readAll(t *testing.T, r pulsar.Reader) []pulsar.Message {
	t.Helper()
	var out []pulsar.Message
	for r.HasNext() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d messages, HasNext said more but Next failed: %v", len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func compactedReader(t *testing.T, client pulsar.Client, topic string, start pulsar.MessageID) pulsar.Reader {
	t.Helper()
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: start, ReadCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func keysAndValues(ms []pulsar.Message) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Key() + "=" + string(m.Payload())
	}
	return strings.Join(parts, " ")
}

// send sends one message. A tombstone (empty value) carries a property: the
// Go client drops an unbatched message with neither payload nor properties
// as corrupted (its MessageReader), whoever sends it.
func send(t *testing.T, p pulsar.Producer, key, value string) pulsar.MessageID {
	t.Helper()
	m := &pulsar.ProducerMessage{Key: key, Payload: []byte(value)}
	if value == "" {
		m.Properties = map[string]string{"tombstone": "true"}
	}
	id, err := p.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sameID(a, b pulsar.MessageID) bool {
	return a.LedgerID() == b.LedgerID() && a.EntryID() == b.EntryID() && a.BatchIdx() == b.BatchIdx()
}

// TestCompactionReadCompacted: latest value per key, tombstones and keyless
// messages left out, the full topic after the horizon, HasNext and
// GetLastMessageId at the boundary, seeks in both parts, original ids.
func TestCompactionReadCompacted(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tn := topicName(t, topic)
	if st, err := admin.Topics().CompactStatus(tn); err != nil || st.Status != utils.NOTRUN {
		t.Fatalf("status before any compaction: %+v, %v", st, err)
	}

	send(t, p, "a", "a1")
	send(t, p, "b", "b1")
	send(t, p, "", "no key")
	idA2 := send(t, p, "a", "a2")
	send(t, p, "c", "c1")
	send(t, p, "b", "") // tombstone
	idC2 := send(t, p, "c", "c2")
	compactAndWait(t, admin, topic)

	r := compactedReader(t, client, topic, pulsar.EarliestMessageID())
	got := readAll(t, r)
	if kv := keysAndValues(got); kv != "a=a2 c=c2" {
		t.Fatalf("compacted view %q, want a=a2 c=c2", kv)
	}
	if !sameID(got[0].ID(), idA2) || !sameID(got[1].ID(), idC2) {
		t.Fatalf("ids %v %v, want the original %v %v", got[0].ID(), got[1].ID(), idA2, idC2)
	}
	last, err := r.GetLastMessageID()
	if err != nil || !sameID(last, idC2) {
		t.Fatalf("last message id %v (%v), want %v", last, err, idC2)
	}

	// A tombstone as the last message: HasNext must not wait for it.
	send(t, p, "c", "")
	compactAndWait(t, admin, topic)
	r2 := compactedReader(t, client, topic, pulsar.EarliestMessageID())
	if kv := keysAndValues(readAll(t, r2)); kv != "a=a2" {
		t.Fatalf("view after deleting c: %q", kv)
	}
	var stats struct {
		Compaction struct {
			LastCompactionRemovedEventCount int64
			LastCompactionSucceedTimestamp  int64
		}
	}
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/stats", "", 200)), &stats); err != nil ||
		stats.Compaction.LastCompactionSucceedTimestamp == 0 || stats.Compaction.LastCompactionRemovedEventCount != 2 {
		t.Fatalf("compaction stats %+v (%v): want a success and 2 messages removed (c2 and its tombstone)", stats, err)
	}
	metrics := expectHTTP(t, http.MethodGet, s.WebURL()+"/metrics", "", 200)
	for _, want := range []string{`mb_compaction_runs_total{result="success"} 2`, "mb_compaction_duration_seconds_count 2",
		"mb_compaction_removed_messages_total 7", "mb_compaction_kept_messages_total 3", "pulsar_compaction_compacted_entries_count{",
		"pulsar_compaction_compacted_entries_size{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var internal struct {
		CompactedLedger struct{ LedgerID, Entries int64 }
	}
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/internalStats", "", 200)), &internal); err != nil ||
		internal.CompactedLedger.LedgerID < 0 || internal.CompactedLedger.Entries != 1 {
		t.Fatalf("internal stats compactedLedger %+v (%v)", internal.CompactedLedger, err)
	}

	// After the horizon the reader sees every message, tombstones and all.
	send(t, p, "a", "a3")
	send(t, p, "", "no key 2")
	send(t, p, "a", "")
	got = readAll(t, r2)
	if kv := keysAndValues(got); kv != "a=a3 =no key 2 a=" {
		t.Fatalf("after the horizon: %q", kv)
	}
	r3 := compactedReader(t, client, topic, pulsar.EarliestMessageID())
	if kv := keysAndValues(readAll(t, r3)); kv != "a=a2 a=a3 =no key 2 a=" {
		t.Fatalf("view then tail: %q", kv)
	}

	// Seek to the beginning (by time: the Go client seeks readers by id only
	// with a partition index) and by id into the compacted part.
	if err := r3.SeekByTime(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if kv := keysAndValues(readAll(t, r3)); !strings.HasPrefix(kv, "a=a2 a=a3") {
		t.Fatalf("after seek to earliest: %q", kv)
	}
	if err := r3.Seek(idA2); err != nil {
		t.Fatal(err)
	}
	// The Go reader is exclusive of its start id: what follows a2.
	if kv := keysAndValues(readAll(t, r3)); kv != "a=a3 =no key 2 a=" {
		t.Fatalf("after seek to %v: %q", idA2, kv)
	}

	// A durable exclusive consumer reads the view too and its acks hold.
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "compacted",
		ReadCompacted: true, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	ms := receiveN(t, c, 4, 10*time.Second)
	if kv := keysAndValues(ms); kv != "a=a2 a=a3 =no key 2 a=" {
		t.Fatalf("durable read-compacted consumer got %q", kv)
	}
	for _, m := range ms {
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	adminEventually(t, "backlog of the compacted subscription to be 0", func() bool {
		st, err := admin.Topics().GetStats(tn)
		return err == nil && st.Subscriptions["compacted"].MsgBacklog == 0
	})

	// Pulsar refuses read_compacted on shared subscriptions.
	if _, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "shared",
		Type: pulsar.Shared, ReadCompacted: true}); err == nil {
		t.Fatal("read_compacted on a shared subscription was accepted")
	}
}

// TestCompactionBatchedCompressed: keys inside LZ4, ZLIB and ZSTD batches
// count, survivors keep their ids (entry and batch index).
func TestCompactionBatchedCompressed(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	for _, codec := range []pulsar.CompressionType{pulsar.LZ4, pulsar.ZLib, pulsar.ZSTD} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			topic := uniqueTopic(t)
			p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: codec,
				BatchingMaxMessages: 50, BatchingMaxPublishDelay: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			const keys, rounds = 20, 5
			latest := map[string]pulsar.MessageID{}
			values := map[string]string{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for r := 0; r < rounds; r++ {
				for k := 0; k < keys; k++ {
					key, value := fmt.Sprintf("k%02d", k), fmt.Sprintf("v%d-%d", r, k)
					if r == rounds-1 && k%5 == 0 {
						value = "" // tombstones in the last round
					}
					wg.Add(1)
					p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(value)},
						func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
							defer wg.Done()
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							defer mu.Unlock()
							if value == "" {
								delete(latest, key)
								delete(values, key)
							} else {
								latest[key], values[key] = id, value
							}
						})
				}
				if err := p.FlushWithCtx(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			compactAndWait(t, admin, topic)
			got := readAll(t, compactedReader(t, client, topic, pulsar.EarliestMessageID()))
			if len(got) != len(latest) {
				t.Fatalf("view has %d messages, want %d: %s", len(got), len(latest), keysAndValues(got))
			}
			for _, m := range got {
				if string(m.Payload()) != values[m.Key()] || !sameID(m.ID(), latest[m.Key()]) {
					t.Fatalf("key %s: %q at %v, want %q at %v", m.Key(), m.Payload(), m.ID(), values[m.Key()], latest[m.Key()])
				}
			}
		})
	}
}

// TestCompactionStatusEndpoint: 404 for a missing topic, the JSON shape,
// ERROR with the reason for a batch that does not decompress, then SUCCESS
// does not come back until the topic can be compacted.
func TestCompactionStatusEndpoint(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	missing := uniqueTopic(t)
	expectHTTP(t, http.MethodPut, restTopic(s.WebURL(), missing)+"/compaction", "", 404)
	expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), missing)+"/compaction", "", 404)

	topic := uniqueTopic(t)
	c := dialRaw(t, s.BrokerURL())
	c.connect()
	if cmd := c.createProducer(topic, 1); cmd.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("producer: %v", cmd)
	}
	// A batch claiming LZ4 whose payload is not LZ4.
	md := &pb.MessageMetadata{ProducerName: proto.String("raw"), SequenceId: proto.Uint64(0),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli())), NumMessagesInBatch: proto.Int32(2),
		Compression: pb.CompressionType_LZ4.Enum(), UncompressedSize: proto.Uint32(100)}
	if _, err := c.nc.Write(sendFrame(1, 0, wire.BuildPayload(md, []byte{0xff, 0xff, 0xff}))); err != nil {
		t.Fatal(err)
	}
	if cmd := c.read(); cmd.GetType() != pb.BaseCommand_SEND_RECEIPT {
		t.Fatalf("send: %v", cmd)
	}
	if body := expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/compaction", "", 200); strings.TrimSpace(body) != `{"status":"NOT_RUN","lastError":""}` {
		t.Fatalf("status JSON %s", body)
	}
	expectHTTP(t, http.MethodPut, restTopic(s.WebURL(), topic)+"/compaction", "", 204)
	st := waitCompaction(t, admin, topic, utils.ERROR)
	if !strings.Contains(st.LastError, "lz4") {
		t.Fatalf("lastError %q does not say what failed", st.LastError)
	}
	// Non-persistent topics have no compaction.
	expectHTTP(t, http.MethodPut, s.WebURL()+"/admin/v2/non-persistent/public/default/x/compaction", "", 404)
}

// TestCompactionPartitioned: compacting a partitioned topic compacts every partition.
func TestCompactionPartitioned(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 3); err != nil {
		t.Fatal(err)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for r := 0; r < 3; r++ {
		for k := 0; k < 10; k++ {
			send(t, p, fmt.Sprint("k", k), fmt.Sprint(r))
		}
	}
	compactAndWait(t, admin, topic)
	for i := 0; i < 3; i++ {
		part := fmt.Sprintf("%s-partition-%d", topic, i)
		waitCompaction(t, admin, part, utils.SUCCESS)
	}
	// One reader per partition: the Go client's multi-partition HasNext races.
	var got []pulsar.Message
	for i := 0; i < 3; i++ {
		got = append(got, readAll(t, compactedReader(t, client, fmt.Sprintf("%s-partition-%d", topic, i), pulsar.EarliestMessageID()))...)
	}
	if len(got) != 10 {
		t.Fatalf("view of the partitioned topic: %s", keysAndValues(got))
	}
	for _, m := range got {
		if string(m.Payload()) != "2" {
			t.Fatalf("stale value %s=%s", m.Key(), m.Payload())
		}
	}
}

// TestCompactionThreshold: a namespace threshold, and a topic-level one,
// start compactions on their own.
func TestCompactionThreshold(t *testing.T) {
	s := startServer(t, server.Options{CompactionCheckInterval: 50 * time.Millisecond})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	ns := newNamespace(t, admin)
	if err := admin.Namespaces().SetCompactionThreshold(nsName(t, ns), 100); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Namespaces().GetCompactionThreshold(nsName(t, ns)); err != nil || v != 100 {
		t.Fatalf("namespace threshold %d, %v", v, err)
	}
	topic := "persistent://" + ns + "/auto"
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 20; i++ {
		send(t, p, "k", fmt.Sprint(i))
	}
	adminEventually(t, "the threshold to compact the topic", func() bool {
		st, err := admin.Topics().CompactStatus(topicName(t, topic))
		return err == nil && st.Status == utils.SUCCESS
	})

	// Topic level: the namespace has none, the topic has one.
	ns2 := newNamespace(t, admin)
	topic2 := "persistent://" + ns2 + "/auto2"
	p2, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic2, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	send(t, p2, "k", "v")
	if err := admin.Topics().SetCompactionThreshold(topicName(t, topic2), 10); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Topics().GetCompactionThreshold(topicName(t, topic2), false); err != nil || v != 10 {
		t.Fatalf("topic threshold %d, %v", v, err)
	}
	for i := 0; i < 5; i++ {
		send(t, p2, "k", fmt.Sprint(i))
	}
	adminEventually(t, "the topic threshold to compact the topic", func() bool {
		st, err := admin.Topics().CompactStatus(topicName(t, topic2))
		return err == nil && st.Status == utils.SUCCESS
	})
	expectHTTP(t, http.MethodDelete, s.WebURL()+"/admin/v2/namespaces/"+ns+"/compactionThreshold", "", 204)
	expectHTTP(t, http.MethodGet, s.WebURL()+"/admin/v2/namespaces/"+ns+"/compactionThreshold", "", 204)
}

// TestCompactionRetention: with retention 0/0, data before the horizon that
// only the view needs is trimmed; read-compacted readers still get the view.
func TestCompactionRetention(t *testing.T) {
	s := startServer(t, server.Options{PolicyCheckInterval: 50 * time.Millisecond})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	ns := newNamespace(t, admin)
	if err := admin.Namespaces().SetRetention(ns, utils.RetentionPolicies{}); err != nil {
		t.Fatal(err)
	}
	topic := "persistent://" + ns + "/retained"
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "all", AckWithResponse: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 30; i++ {
		send(t, p, fmt.Sprint("k", i%3), fmt.Sprint(i))
	}
	// Compacted while the subscription still holds the data: acked first,
	// retention 0/0 could trim it all before the compaction reads it.
	msgs := receiveN(t, c, 30, 10*time.Second)
	compactAndWait(t, admin, topic)
	for _, m := range msgs {
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	adminEventually(t, "retention to trim up to the horizon", func() bool {
		st, err := admin.Topics().GetInternalStats(topicName(t, topic))
		return err == nil && st.NumberOfEntries == 0
	})
	got := readAll(t, compactedReader(t, client, topic, pulsar.EarliestMessageID()))
	if kv := keysAndValues(got); kv != "k0=27 k1=28 k2=29" {
		t.Fatalf("view after trimming: %q", kv)
	}
}

// compactionKeys is how many keys the TableView test uses: 100k with
// MB_TEST_COMPACTION_KEYS=100000 (the figure; minutes under -race).
func compactionKeys(t *testing.T) int {
	if v := os.Getenv("MB_TEST_COMPACTION_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 10000
}

// TestTableViewAcrossKillNine: a TableView over many keys with updates and
// deletes, compacted, the broker killed (-9) once at rest and once while a
// compaction runs; after each restart a new TableView equals the model, and
// follows producers that keep writing.
func TestTableViewAcrossKillNine(t *testing.T) {
	keys := compactionKeys(t)
	dir := t.TempDir()
	proc := startProc(t, dir, 0, 0)
	topic := uniqueTopic(t)
	model := map[string]string{}

	write := func(url string, round int) {
		t.Helper()
		client := newClient(t, url)
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil), CompressionType: pulsar.LZ4,
			BatchingMaxMessages: 500})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%06d", k)
			value := fmt.Sprintf("r%d-%d", round, k)
			switch {
			case round > 0 && k%7 == round%7:
				value = "" // delete
			case round > 0 && k%3 != 0:
				continue // only some keys change
			}
			if value == "" {
				delete(model, key)
			} else {
				model[key] = value
			}
			wg.Add(1)
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: []byte(value)},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
					wg.Done()
				})
		}
		p.FlushWithCtx(context.Background())
		wg.Wait()
		if failed != nil {
			t.Fatal(failed)
		}
		p.Close()
		client.Close()
	}
	check := func(url string, what string) {
		t.Helper()
		client := newClient(t, url)
		tv, err := client.CreateTableView(pulsar.TableViewOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil),
			SchemaValueType: reflect.TypeOf((*string)(nil))})
		if err != nil {
			t.Fatalf("%s: table view: %v", what, err)
		}
		defer tv.Close()
		got := tv.Entries()
		if len(got) != len(model) {
			t.Fatalf("%s: table view has %d keys, want %d", what, len(got), len(model))
		}
		for k, v := range model {
			if s, _ := got[k].(*string); s == nil || *s != v {
				t.Fatalf("%s: key %s = %v, want %q", what, k, got[k], v)
			}
		}
		// It follows producers that write while it is open.
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		send(t, p, "key-live", what)
		model["key-live"] = what
		p.Close()
		adminEventually(t, "the table view to see a live write", func() bool {
			v, _ := tv.Get("key-live").(*string)
			return v != nil && *v == what
		})
	}
	adminFor := func(webURL string) pulsaradmin.Client {
		a, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: webURL})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	write(proc.brokerURL, 0)
	write(proc.brokerURL, 1)
	compactAndWait(t, adminFor(proc.webURL), topic)
	write(proc.brokerURL, 2) // after the horizon
	proc.kill(t)

	proc = startProc(t, dir, proc.brokerPort, proc.httpPort)
	check(proc.brokerURL, "after kill -9 at rest")

	// Kill while a compaction runs: the old view or the new one, never a mix.
	write(proc.brokerURL, 3)
	if err := adminFor(proc.webURL).Topics().Compact(topicName(t, topic)); err != nil {
		t.Fatal(err)
	}
	proc.kill(t)
	proc = startProc(t, dir, proc.brokerPort, proc.httpPort)
	check(proc.brokerURL, "after kill -9 during compaction")
	// More crash points: a kill at several moments after the trigger. The
	// delays only spread the crash over the compaction's steps; every
	// outcome must give the same table.
	for i, delay := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		write(proc.brokerURL, 4+i)
		if err := adminFor(proc.webURL).Topics().Compact(topicName(t, topic)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		proc.kill(t)
		proc = startProc(t, dir, proc.brokerPort, proc.httpPort)
		check(proc.brokerURL, fmt.Sprintf("after kill -9 %v into a compaction", delay))
	}
	compactAndWait(t, adminFor(proc.webURL), topic)
	check(proc.brokerURL, "after compacting again")
	// Compacted ledgers are not topics.
	_, topics, err := adminFor(proc.webURL).Topics().List(nsName(t, "public/default"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics {
		if strings.Contains(name, "compacted") {
			t.Fatalf("a compacted ledger is listed as a topic: %s", name)
		}
	}
}

// TestCompactionHorizonPassesReader: a reader past the horizon, with
// messages sent but not yet delivered to it (no permits), must still get the
// tombstones and keyless messages when a compaction moves the horizon past
// its position (apache/pulsar#26190), and a reader in the middle of the view
// must not skip compacted data when the view is replaced (apache/pulsar#12522).
func TestCompactionHorizonPassesReader(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 10; i++ {
		send(t, p, fmt.Sprint("k", i), "v1")
	}
	compactAndWait(t, admin, topic)
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID(),
		ReadCompacted: true, ReceiverQueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var first []pulsar.Message
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Read 3 of the view, then change the topic and compact again.
	for i := 0; i < 3; i++ {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, m)
	}
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			send(t, p, fmt.Sprint("k", i), "") // deletes
		} else {
			send(t, p, fmt.Sprint("k", i), "v2")
		}
	}
	compactAndWait(t, admin, topic)
	rest := readAll(t, r)
	model := map[string]string{}
	for _, m := range append(first, rest...) {
		if len(m.Payload()) == 0 {
			delete(model, m.Key())
		} else {
			model[m.Key()] = string(m.Payload())
		}
	}
	if len(model) != 5 {
		t.Fatalf("reader's table after the horizon moved: %v (read %s | %s)", model, keysAndValues(first), keysAndValues(rest))
	}
	for k, v := range model {
		if v != "v2" {
			t.Fatalf("key %s: %s, want v2 (model %v)", k, v, model)
		}
	}
}

// TestCLICompaction: mb admin topics compact and compaction-status.
func TestCLICompaction(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send(t, p, "k", "v1")
	send(t, p, "k", "v2")
	if out := adminCLI(t, s, "topics", "compaction-status", topic).ok(t); strings.TrimSpace(out) != "NOT_RUN" {
		t.Fatalf("status before: %q", out)
	}
	adminCLI(t, s, "topics", "compact", topic).ok(t)
	if out := adminCLI(t, s, "topics", "compaction-status", "-w", topic).ok(t); strings.TrimSpace(out) != "SUCCESS" {
		t.Fatalf("status after: %q", out)
	}
	var st struct{ Status, LastError string }
	adminCLI(t, s, "-o", "json", "topics", "compaction-status", topic).jsonOf(t, &st)
	if st.Status != "SUCCESS" {
		t.Fatalf("json status %+v", st)
	}
	adminCLI(t, s, "topics", "compact", uniqueTopic(t)).fails(t, "topic not found")
}

// TestCompactionConflict: a second trigger while a compaction runs gets 409.
func TestCompactionConflict(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 1000, CompressionType: pulsar.ZSTD})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	for i := 0; i < 100_000; i++ {
		wg.Add(1)
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: fmt.Sprint("k", i%50_000), Payload: []byte(fmt.Sprint(i))},
			func(pulsar.MessageID, *pulsar.ProducerMessage, error) { wg.Done() })
	}
	wg.Wait()
	url := restTopic(s.WebURL(), topic) + "/compaction"
	expectHTTP(t, http.MethodPut, url, "", 204)
	code, body := httpDo(t, http.MethodPut, url, "")
	if code == 204 {
		t.Skip("the compaction ended before the second trigger; nothing to check")
	}
	if code != 409 || !strings.Contains(body, "Compaction already in progress") {
		t.Fatalf("second trigger: %d %s", code, body)
	}
	waitCompaction(t, admin, topic, utils.SUCCESS)
}

// TestTableViewShortTopicName: a short topic name (my-table meaning
// persistent://public/default/my-table) works for the producer, the
// compaction and the TableView, which Pulsar users once found broken.
func TestTableViewShortTopicName(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	short := fmt.Sprintf("short-table-%d", time.Now().UnixNano())
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: short, Schema: pulsar.NewStringSchema(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send(t, p, "a", "1")
	send(t, p, "b", "1")
	send(t, p, "a", "2")
	send(t, p, "b", "")
	compactAndWait(t, admin, short)
	tv, err := client.CreateTableView(pulsar.TableViewOptions{Topic: short, Schema: pulsar.NewStringSchema(nil),
		SchemaValueType: reflect.TypeOf((*string)(nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tv.Close()
	if v, _ := tv.Get("a").(*string); tv.Size() != 1 || v == nil || *v != "2" {
		t.Fatalf("table view of %s: %v", short, tv.Entries())
	}
}

// TestCompactionChunkedMessages: a chunked message that is its key's latest
// value stays in the compacted view with all its chunks (also when the
// chunks of two producers interleave); older chunked values, chunked values
// replaced by an unchunked one and tombstoned ones are left out.
func TestCompactionChunkedMessages(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	producer := func(name string) pulsar.Producer {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name, EnableChunking: true,
			DisableBatching: true, ChunkMaxMessageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	p1, p2 := producer("chunks-1"), producer("chunks-2")
	big := func(c byte) string { return strings.Repeat(string(c), 3500) } // 4 chunks
	send(t, p1, "k1", big('a'))
	send(t, p1, "k2", big('b'))
	send(t, p1, "k1", "small c")
	send(t, p1, "k3", big('e'))
	send(t, p1, "k3", "")
	// Two producers at once: their chunks interleave in the topic.
	var wg sync.WaitGroup
	for _, m := range []struct {
		p          pulsar.Producer
		key, value string
	}{{p1, "k2", big('d')}, {p2, "k4", big('f')}} {
		wg.Add(1)
		m.p.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: m.key, Payload: []byte(m.value)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				defer wg.Done()
				if err != nil {
					t.Error(err)
				}
			})
	}
	wg.Wait()
	compactAndWait(t, admin, topic)
	want := map[string]string{"k1": "small c", "k2": big('d'), "k4": big('f')}
	// Next, not HasNext: the Go client's HasNext stays true after a chunked
	// message that is the topic's last (compacted or not), against Pulsar
	// too. The last message id is the last chunk's entry with batch index -1,
	// as Pulsar answers; the client turns that -1 into 0 and compares it with
	// the chunked message id's -1. check returns the last chunk id read.
	check := func(r pulsar.Reader, want map[string]string) (last int64) {
		t.Helper()
		// Counted before the loop: ranging over want while deleting from
		// it ends early and leaves messages unread.
		for n := len(want); n > 0; n-- {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, err := r.Next(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[m.Key()]; !ok || string(m.Payload()) != w {
				t.Fatalf("key %s: %.20q (%d bytes) at %v, want %.20q (%d bytes)", m.Key(), m.Payload(), len(m.Payload()), m.ID(), w, len(w))
			}
			delete(want, m.Key())
			last = max(last, m.ID().EntryID())
		}
		return last
	}
	// lastIs: GET_LAST_MESSAGE_ID names the last chunk of the last message.
	lastIs := func(r pulsar.Reader, entry int64) {
		t.Helper()
		id, err := r.GetLastMessageID()
		if err != nil {
			t.Fatal(err)
		}
		if id.EntryID() != entry {
			t.Fatalf("last message id %v, want entry %d", id, entry)
		}
	}
	check(compactedReader(t, client, topic, pulsar.EarliestMessageID()), maps.Clone(want))
	// Nothing else in the view: the next message is one sent after it.
	r := compactedReader(t, client, topic, pulsar.EarliestMessageID())
	lastIs(r, check(r, maps.Clone(want)))
	send(t, p1, "k6", "after")
	check(r, map[string]string{"k6": "after"})
	lastChunked := send(t, p2, "k7", big('i'))
	if e := check(r, map[string]string{"k7": big('i')}); e != lastChunked.EntryID() {
		t.Fatalf("chunked message read at entry %d, sent as %v", e, lastChunked)
	}
	lastIs(r, lastChunked.EntryID())

	// A second compaction reads the first one's chunks back from the view.
	send(t, p2, "k4", big('g'))
	send(t, p1, "k5", "small h")
	compactAndWait(t, admin, topic)
	want["k4"], want["k5"], want["k6"], want["k7"] = big('g'), "small h", "after", big('i')
	check(compactedReader(t, client, topic, pulsar.EarliestMessageID()), want)
}
