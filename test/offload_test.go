package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/testutil/s3test"
	"github.com/messagebus/messagebus/server"
)

// offloadOptions configures tiered storage on gw, deleting local copies at
// once.
func offloadOptions(t *testing.T, gw *s3test.Gateway, bucket string) server.Offload {
	gw.Bucket(t, bucket, nil)
	return server.Offload{Driver: "s3", Bucket: bucket, Endpoint: gw.Endpoint, PathStyle: true, Prefix: "mb", DeletionLag: -1}
}

type sent struct {
	id      pulsar.MessageID
	payload string
}

func produceN(t *testing.T, client pulsar.Client, topic string, n int) []sent {
	t.Helper()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]sent, n)
	done := make(chan error, n)
	for i := range n {
		payload := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i%300))
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(payload)}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			out[i] = sent{id: id, payload: payload}
			done <- err
		})
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// offloadID is the message id as pulsaradmin sends it; plus is added to the entry id.
func offloadID(id pulsar.MessageID, plus int64) utils.MessageID {
	return utils.MessageID{LedgerID: id.LedgerID(), EntryID: id.EntryID() + plus, PartitionIndex: -1}
}

func offloadAndWait(t *testing.T, admin pulsaradmin.Client, topic string, before utils.MessageID, want utils.Status) utils.OffloadProcessStatus {
	t.Helper()
	tn := topicName(t, topic)
	if err := admin.Topics().Offload(tn, before); err != nil {
		t.Fatalf("offload: %v", err)
	}
	var st utils.OffloadProcessStatus
	adminEventually(t, "offload to end", func() bool {
		var err error
		if st, err = admin.Topics().OffloadStatus(tn); err != nil {
			t.Fatal(err)
		}
		return st.Status != utils.RUNNING
	})
	if st.Status != want {
		t.Fatalf("offload ended %s (%q), want %s", st.Status, st.LastError, want)
	}
	return st
}

// readFrom reads n messages with a reader starting at start and checks them
// against want.
func readFrom(t *testing.T, client pulsar.Client, topic string, start pulsar.MessageID, inclusive bool, want []sent) {
	t.Helper()
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: start, StartMessageIDInclusive: inclusive})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, w := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := r.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reader: message %d of %d: %v", i, len(want), err)
		}
		checkMessage(t, m, w)
	}
}

func checkMessage(t *testing.T, m pulsar.Message, w sent) {
	t.Helper()
	if string(m.Payload()) != w.payload || m.ID().LedgerID() != w.id.LedgerID() || m.ID().EntryID() != w.id.EntryID() {
		t.Fatalf("got %d:%d %.20q, want %d:%d %.20q", m.ID().LedgerID(), m.ID().EntryID(), m.Payload(),
			w.id.LedgerID(), w.id.EntryID(), w.payload)
	}
}

// TestOffloadReadBackEveryWay: offload by the admin call, local copies
// deleted, broker restarted; readers, seeks and a durable subscription get
// every message back with its id.
func TestOffloadReadBackEveryWay(t *testing.T) {
	gw := s3test.Start(t)
	dir := t.TempDir()
	opts := server.Options{DataDir: dir, Offload: offloadOptions(t, gw, "readback")}
	s := startServer(t, opts)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	// A durable subscription with the whole topic as backlog.
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	const n = 3000
	msgs := produceN(t, client, topic, n)
	admin := newAdmin(t, s)
	st := offloadAndWait(t, admin, topic, offloadID(msgs[2000].id, 0), utils.SUCCESS)
	if st.FirstUnOffloadedMessage.EntryID != msgs[2000].id.EntryID() || st.FirstUnOffloadedMessage.LedgerID != msgs[0].id.LedgerID() {
		t.Fatalf("first unoffloaded %+v, want entry %d", st.FirstUnOffloadedMessage, msgs[2000].id.EntryID())
	}
	var stats struct{ OffloadedStorageSize, StorageSize int64 }
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/stats", "", http.StatusOK)), &stats); err != nil ||
		stats.OffloadedStorageSize <= 0 || stats.StorageSize < stats.OffloadedStorageSize {
		t.Fatalf("stats: offloadedStorageSize %d storageSize %d (%v)", stats.OffloadedStorageSize, stats.StorageSize, err)
	}
	var internal struct {
		OffloadedStorageSize int64
		Ledgers              []struct {
			LedgerID, Entries, Size int64
			Offloaded               bool
		}
	}
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/internalStats", "", http.StatusOK)), &internal); err != nil ||
		internal.OffloadedStorageSize != stats.OffloadedStorageSize || len(internal.Ledgers) != 2 ||
		!internal.Ledgers[0].Offloaded || internal.Ledgers[0].Entries != 2000 || internal.Ledgers[0].Size != stats.OffloadedStorageSize ||
		internal.Ledgers[1].Offloaded || internal.Ledgers[1].Entries != n-2000 || internal.Ledgers[0].LedgerID != msgs[0].id.LedgerID() {
		t.Fatalf("internal stats: %+v (%v)", internal, err)
	}
	// A second offload of the same range is a no-op that succeeds.
	offloadAndWait(t, admin, topic, offloadID(msgs[1000].id, 0), utils.SUCCESS)
	client.Close()

	// Restart: cold cache, local copies gone.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	s = startServer(t, opts)
	client = newClient(t, s.BrokerURL())

	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	readFrom(t, client, topic, msgs[777].id, true, msgs[777:])
	readFrom(t, client, topic, msgs[1999].id, false, msgs[2000:])
	if got := metricValue(t, s.WebURL(), "mb_offload_read_entries_total"); got < 2000 {
		t.Fatalf("mb_offload_read_entries_total = %v: offloaded entries were not read from the object store", got)
	}

	// Peek reads the subscription's first messages from the object store.
	peeked, err := newAdmin(t, s).Subscriptions().PeekMessages(topicName(t, topic), "sub", 3)
	if err != nil || len(peeked) != 3 {
		t.Fatalf("peek: %d messages, %v", len(peeked), err)
	}
	for i, m := range peeked {
		if string(m.Payload) != msgs[i].payload || m.MessageID.EntryID != msgs[i].id.EntryID() {
			t.Fatalf("peek %d: %d %.20q, want %d %.20q", i, m.MessageID.EntryID, m.Payload, msgs[i].id.EntryID(), msgs[i].payload)
		}
	}

	// The durable subscription catches up through the offloaded range.
	c, err = client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, w := range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := c.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("subscription: message %d: %v", i, err)
		}
		checkMessage(t, m, w)
		c.Ack(m)
	}

	// Seek by id and by publish time into offloaded data.
	if err := c.Seek(msgs[500].id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, m, msgs[501]) // the Go client's seek skips the message it was given
	// The publish times as stored: read the message at 1200 by a reader.
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: msgs[1200].id, StartMessageIDInclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	at, err := r.Next(ctx)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SeekByTime(at.PublishTime()); err != nil {
		t.Fatal(err)
	}
	m, err = c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !m.PublishTime().Equal(at.PublishTime()) || m.ID().EntryID() > msgs[1200].id.EntryID() {
		t.Fatalf("seek by time %v: got entry %d published %v", at.PublishTime(), m.ID().EntryID(), m.PublishTime())
	}
}

// TestOffloadStoreDownReportsErrorLosesNothing: with the object store
// failing, the offload ends in ERROR with the store's error and every
// message stays readable; once the store is back the offload succeeds.
func TestOffloadStoreDownReportsErrorLosesNothing(t *testing.T) {
	gw := s3test.Start(t)
	var faulty *objstore.Faulty
	opts := server.Options{Offload: offloadOptions(t, gw, "faults")}
	opts.Offload.WrapObjects = func(s objstore.Store) objstore.Store {
		faulty = objstore.NewFaulty(s, objstore.Faults{Seed: 11})
		return faulty
	}
	s := startServer(t, opts)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	msgs := produceN(t, client, topic, 500)
	admin := newAdmin(t, s)
	faulty.SetDown(true)
	st := offloadAndWait(t, admin, topic, offloadID(msgs[400].id, 0), utils.ERROR)
	if !strings.Contains(st.LastError, "injected") {
		t.Fatalf("lastError %q does not tell the store's error", st.LastError)
	}
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	faulty.SetDown(false)
	offloadAndWait(t, admin, topic, offloadID(msgs[400].id, 0), utils.SUCCESS)
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
}

// TestOffloadAdminErrors: 409 while an offload runs, 400 without tiered
// storage or without a message id.
func TestOffloadAdminErrors(t *testing.T) {
	s := startServer(t, server.Options{})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	produceN(t, client, topic, 1)
	url := restTopic(s.WebURL(), topic) + "/offload"
	expectHTTP(t, http.MethodPut, url, `{"ledgerId":1,"entryId":1}`, http.StatusBadRequest)
	expectHTTP(t, http.MethodGet, url, "", http.StatusBadRequest)

	gw := s3test.Start(t)
	opts := server.Options{Offload: offloadOptions(t, gw, "busy")}
	opts.Offload.WrapObjects = func(s objstore.Store) objstore.Store {
		return objstore.NewFaulty(s, objstore.Faults{Seed: 5, SlowRate: 1, SlowDelay: 500 * time.Millisecond})
	}
	s = startServer(t, opts)
	client = newClient(t, s.BrokerURL())
	msgs := produceN(t, client, topic, 10)
	url = restTopic(s.WebURL(), topic) + "/offload"
	expectHTTP(t, http.MethodGet, url, "", http.StatusOK) // NOT_RUN
	expectHTTP(t, http.MethodPut, url, `{}`, http.StatusBadRequest)
	body := fmt.Sprintf(`{"ledgerId":%d,"entryId":%d}`, msgs[9].id.LedgerID(), msgs[9].id.EntryID())
	expectHTTP(t, http.MethodPut, url, body, http.StatusNoContent)
	expectHTTP(t, http.MethodPut, url, body, http.StatusConflict)
}

// TestOffloadKillDuringOffload: a broker killed (SIGKILL) while an offload
// writes its object restarts with every message readable; the next offload
// adopts or rewrites the object and succeeds, leaving one object per range.
func TestOffloadKillDuringOffload(t *testing.T) {
	gw := s3test.Start(t)
	objects := gw.Bucket(t, "kill", nil)
	dir := t.TempDir()
	args := []string{"--offload-driver", "s3", "--offload-bucket", "kill", "--offload-endpoint", gw.Endpoint,
		"--offload-path-style", "--offload-prefix", "mb", "--offload-deletion-lag-ms", "0"}
	p := startProc(t, dir, 0, 0, args...)
	client := newClient(t, p.brokerURL)
	topic := uniqueTopic(t)
	msgs := produceN(t, client, topic, 20000)
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: p.webURL})
	if err != nil {
		t.Fatal(err)
	}
	tn := topicName(t, topic)
	last := msgs[len(msgs)-1].id
	if err := admin.Topics().Offload(tn, offloadID(last, 1)); err != nil {
		t.Fatal(err)
	}
	p.kill(t)
	client.Close()

	p = startProc(t, dir, p.brokerPort, p.httpPort, args...)
	client = newClient(t, p.brokerURL)
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	admin, err = pulsaradmin.NewClient(&config.Config{WebServiceURL: p.webURL})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := admin.Topics().OffloadStatus(tn); err != nil || (st.Status != utils.NOTRUN && st.Status != utils.SUCCESS) {
		t.Fatalf("status after restart: %+v %v", st, err)
	}
	// The same range again: the object of the killed offload, if its PUT
	// completed, is adopted (same key, same bytes).
	st := offloadAndWait(t, admin, topic, offloadID(last, 1), utils.SUCCESS)
	if st.FirstUnOffloadedMessage.EntryID != last.EntryID()+1 {
		t.Fatalf("first unoffloaded %+v, want entry %d", st.FirstUnOffloadedMessage, last.EntryID()+1)
	}
	p.kill(t) // again, after the offload: the manifest and local trim survive
	p = startProc(t, dir, p.brokerPort, p.httpPort, args...)
	client = newClient(t, p.brokerURL)
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := objects.List(ctx, "mb/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !strings.HasSuffix(list[0].Key, fmt.Sprintf("/0-%d", last.EntryID())) {
		t.Fatalf("objects %v, want the one object of entries 0-%d", list, last.EntryID())
	}
}

// TestCLIOffload: mb admin topics offload and offload-status.
func TestCLIOffload(t *testing.T) {
	gw := s3test.Start(t)
	s := startServer(t, server.Options{Offload: offloadOptions(t, gw, "cli")})
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	msgs := produceN(t, client, topic, 100)
	if out := adminCLI(t, s, "topics", "offload-status", topic).ok(t); !strings.HasPrefix(out, "NOT_RUN") {
		t.Fatalf("status before: %q", out)
	}
	adminCLI(t, s, "topics", "offload", "-m", fmt.Sprintf("%d:%d", msgs[60].id.LedgerID(), msgs[60].id.EntryID()), topic).ok(t)
	want := fmt.Sprintf("SUCCESS (first entry not offloaded: %d:%d)", msgs[60].id.LedgerID(), msgs[60].id.EntryID())
	if out := adminCLI(t, s, "topics", "offload-status", "-w", topic).ok(t); strings.TrimSpace(out) != want {
		t.Fatalf("status after: %q, want %q", out, want)
	}
	adminCLI(t, s, "topics", "offload", topic).ok(t) // everything
	var st struct {
		Status                  string
		FirstUnoffloadedMessage struct{ LedgerID, EntryID int64 }
	}
	adminCLI(t, s, "-o", "json", "topics", "offload-status", "-w", topic).jsonOf(t, &st)
	if st.Status != "SUCCESS" || st.FirstUnoffloadedMessage.EntryID != msgs[99].id.EntryID()+1 {
		t.Fatalf("json status %+v", st)
	}
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
}

// TestOffloadNamespacePolicies: offload_threshold 0 offloads on its own,
// offload_deletion_lag_ms 0 deletes local copies at once (the broker's lag
// is 4 h); the policy endpoints answer as Pulsar's.
func TestOffloadNamespacePolicies(t *testing.T) {
	gw := s3test.Start(t)
	opts := server.Options{Offload: offloadOptions(t, gw, "policies"), PolicyCheckInterval: 50 * time.Millisecond}
	opts.Offload.DeletionLag = 0 // the default, 4 h
	s := startServer(t, opts)
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	n := nsName(t, ns)
	for _, get := range []func(utils.NameSpaceName) (int64, error){admin.Namespaces().GetOffloadThreshold, admin.Namespaces().GetOffloadThresholdInSeconds} {
		if v, err := get(n); err != nil || v != -1 {
			t.Fatalf("unset threshold: %d %v, want -1", v, err)
		}
	}
	expectHTTP(t, http.MethodGet, s.WebURL()+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", "", http.StatusNoContent)
	expectHTTP(t, http.MethodPut, s.WebURL()+"/admin/v2/namespaces/"+ns+"/offloadThreshold", "-2", http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPut, s.WebURL()+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", `"x"`, http.StatusBadRequest)

	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/policy-offload"
	msgs := produceN(t, client, topic, 300)
	if err := admin.Namespaces().SetOffloadDeleteLag(n, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Namespaces().GetOffloadDeleteLag(n); err != nil || v != 0 {
		t.Fatalf("deletion lag %d %v", v, err)
	}
	if err := admin.Namespaces().SetOffloadThreshold(n, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Namespaces().GetOffloadThreshold(n); err != nil || v != 0 {
		t.Fatalf("threshold %d %v", v, err)
	}
	tn := topicName(t, topic)
	adminEventually(t, "the policy's offload", func() bool {
		st, err := admin.Topics().OffloadStatus(tn)
		return err == nil && st.Status == utils.SUCCESS && st.FirstUnOffloadedMessage.EntryID == msgs[299].id.EntryID()+1
	})
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	if got := metricValue(t, s.WebURL(), "mb_offload_read_entries_total"); got < 300 {
		t.Fatalf("mb_offload_read_entries_total = %v: local copies were not deleted at once", got)
	}
	if err := admin.Namespaces().ClearOffloadDeleteLag(n); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, http.MethodGet, s.WebURL()+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", "", http.StatusNoContent)

	// By age: offload_threshold_in_seconds 0 offloads every entry published so far.
	ns2 := newNamespace(t, admin)
	if err := admin.Namespaces().SetOffloadThresholdInSeconds(nsName(t, ns2), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := admin.Namespaces().GetOffloadThresholdInSeconds(nsName(t, ns2)); err != nil || v != 0 {
		t.Fatalf("threshold in seconds %d %v", v, err)
	}
	topic2 := "persistent://" + ns2 + "/age-offload"
	msgs2 := produceN(t, client, topic2, 50)
	adminEventually(t, "the age policy's offload", func() bool {
		st, err := admin.Topics().OffloadStatus(topicName(t, topic2))
		return err == nil && st.Status == utils.SUCCESS && st.FirstUnOffloadedMessage.EntryID == msgs2[49].id.EntryID()+1
	})
	readFrom(t, client, topic2, pulsar.EarliestMessageID(), false, msgs2)
}

// TestOffloadPartitionedTopic: the admin calls on a partitioned topic act on
// every partition; a consumer from earliest gets every message back.
func TestOffloadPartitionedTopic(t *testing.T) {
	gw := s3test.Start(t)
	s := startServer(t, server.Options{Offload: offloadOptions(t, gw, "partitioned")})
	admin := newAdmin(t, s)
	topic := uniqueTopic(t)
	tn := topicName(t, topic)
	if err := admin.Topics().Create(tn, 2); err != nil {
		t.Fatal(err)
	}
	client := newClient(t, s.BrokerURL())
	msgs := produceN(t, client, topic, 200)
	if err := admin.Topics().Offload(tn, utils.Latest); err != nil {
		t.Fatal(err)
	}
	adminEventually(t, "offload of both partitions", func() bool {
		st, err := admin.Topics().OffloadStatus(tn)
		return err == nil && st.Status == utils.SUCCESS
	})
	for p := range 2 {
		st, err := admin.Topics().OffloadStatus(topicName(t, fmt.Sprintf("%s-partition-%d", topic, p)))
		if err != nil || st.Status != utils.SUCCESS || st.FirstUnOffloadedMessage.EntryID == 0 {
			t.Fatalf("partition %d: %+v %v", p, st, err)
		}
	}
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "all",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string]bool{}
	for _, m := range msgs {
		want[m.payload] = true
	}
	for range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := c.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !want[string(m.Payload())] {
			t.Fatalf("unexpected or repeated message %.20q", m.Payload())
		}
		delete(want, string(m.Payload()))
	}
}

// TestOffloadTopicPolicies: a topic's offloadPolicies override the
// namespace's thresholds and deletion lag, both ways, and the endpoint
// answers as Pulsar's (pulsaradmin's Set/Get/RemoveOffloadPolicies).
func TestOffloadTopicPolicies(t *testing.T) {
	gw := s3test.Start(t)
	opts := server.Options{Offload: offloadOptions(t, gw, "topic-policies"), PolicyCheckInterval: 50 * time.Millisecond}
	opts.Offload.DeletionLag = 0 // the default, 4 h
	s := startServer(t, opts)
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	client := newClient(t, s.BrokerURL())
	on, off, plain := "persistent://"+ns+"/on", "persistent://"+ns+"/off", "persistent://"+ns+"/plain"
	msgsOn := produceN(t, client, on, 200)
	produceN(t, client, off, 50)
	produceN(t, client, plain, 50)
	tnOn, tnOff, tnPlain := topicName(t, on), topicName(t, off), topicName(t, plain)

	if p, err := admin.Topics().GetOffloadPolicies(tnOn); err != nil || p != nil {
		t.Fatalf("unset: %+v %v, want nil", p, err)
	}
	url := restTopic(s.WebURL(), on) + "/offloadPolicies"
	expectHTTP(t, http.MethodGet, url, "", http.StatusNoContent)
	expectHTTP(t, http.MethodPost, url, `{"managedLedgerOffloadThresholdInBytes":-2}`, http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPost, url, `{"managedLedgerOffloadDeletionLagInMillis":-1}`, http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPost, url, `{"managedLedgerOffloadDriver":"google-cloud-storage"}`, http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPost, url, `[1]`, http.StatusBadRequest)
	expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), uniqueTopic(t))+"/offloadPolicies", "", http.StatusNotFound)

	// The namespace will offload at once; "off" opts out with -1.
	if err := admin.Topics().SetOffloadPolicies(tnOff, utils.OffloadPolicies{ManagedLedgerOffloadThresholdInBytes: -1}); err != nil {
		t.Fatal(err)
	}
	// "on": a 1-byte threshold (everything) and a 1 ms deletion lag, where
	// the broker's lag is 4 h.
	want := utils.OffloadPolicies{ManagedLedgerOffloadDriver: "aws-s3", ManagedLedgerOffloadThresholdInBytes: 1,
		ManagedLedgerOffloadDeletionLagInMillis: 1}
	if err := admin.Topics().SetOffloadPolicies(tnOn, want); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Topics().GetOffloadPolicies(tnOn); err != nil || p == nil || !reflect.DeepEqual(*p, want) {
		t.Fatalf("get: %+v %v, want %+v", p, err, want)
	}
	if err := admin.Namespaces().SetOffloadThreshold(nsName(t, ns), 0); err != nil {
		t.Fatal(err)
	}
	var applied struct {
		Bytes   int64 `json:"managedLedgerOffloadThresholdInBytes"`
		Seconds int64 `json:"managedLedgerOffloadThresholdInSeconds"`
	}
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), off)+"/offloadPolicies?applied=true", "", http.StatusOK)), &applied); err != nil ||
		applied.Bytes != -1 || applied.Seconds != -1 {
		t.Fatalf("applied on off: %+v %v", applied, err)
	}
	adminEventually(t, "the topic policy's offload", func() bool {
		st, err := admin.Topics().OffloadStatus(tnOn)
		return err == nil && st.Status == utils.SUCCESS && st.FirstUnOffloadedMessage.EntryID == msgsOn[199].id.EntryID()+1
	})
	readFrom(t, client, on, pulsar.EarliestMessageID(), false, msgsOn)
	if got := metricValue(t, s.WebURL(), "mb_offload_read_entries_total"); got < 200 {
		t.Fatalf("mb_offload_read_entries_total = %v: the topic's deletion lag was not applied", got)
	}
	// A round of the monitor after "off" existed offloads "plain" (the
	// namespace's policy) and leaves "off" alone.
	adminEventually(t, "the namespace policy's offload", func() bool {
		st, err := admin.Topics().OffloadStatus(tnPlain)
		return err == nil && st.Status == utils.SUCCESS
	})
	if st, err := admin.Topics().OffloadStatus(tnOff); err != nil || st.Status != utils.NOTRUN {
		t.Fatalf("topic with threshold -1: %+v %v, want NOT_RUN", st, err)
	}
	if err := admin.Topics().RemoveOffloadPolicies(tnOn); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, http.MethodGet, url, "", http.StatusNoContent)
}

// TestOffloadCompactedLedger: the compacted ledger is offloaded with the
// topic once the offload passes the compaction horizon; read-compacted
// readers then get the view from the object store.
func TestOffloadCompactedLedger(t *testing.T) {
	gw := s3test.Start(t)
	s := startServer(t, server.Options{Offload: offloadOptions(t, gw, "compacted")})
	admin := newAdmin(t, s)
	client := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var last pulsar.MessageID
	for i := range 100 {
		last = send(t, p, fmt.Sprint("k", i%10), fmt.Sprint(i))
	}
	compactAndWait(t, admin, topic)
	offloadAndWait(t, admin, topic, offloadID(last, 1), utils.SUCCESS)
	var internal struct {
		CompactedLedger struct {
			Entries   int64
			Offloaded bool
		}
	}
	adminEventually(t, "the compacted ledger offloaded", func() bool {
		return json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, restTopic(s.WebURL(), topic)+"/internalStats", "", http.StatusOK)), &internal) == nil &&
			internal.CompactedLedger.Offloaded
	})
	if internal.CompactedLedger.Entries != 10 {
		t.Fatalf("compacted ledger: %+v, want 10 entries", internal.CompactedLedger)
	}
	// "offloaded" is the object store's side; the local copy goes a moment
	// later (deletion lag none), and until then reads may be served from
	// it. Once it is gone, the whole view comes from the object store.
	adminEventually(t, "the compacted view read from the object store", func() bool {
		before := metricValue(t, s.WebURL(), "mb_offload_read_entries_total")
		got := readAll(t, compactedReader(t, client, topic, pulsar.EarliestMessageID()))
		if kv := keysAndValues(got); kv != "k0=90 k1=91 k2=92 k3=93 k4=94 k5=95 k6=96 k7=97 k8=98 k9=99" {
			t.Fatalf("compacted view: %q", kv)
		}
		return metricValue(t, s.WebURL(), "mb_offload_read_entries_total")-before >= 10
	})
}

// TestOffloadNamespaceOffloadPolicies: the namespace's offloadPolicies
// endpoint (Pulsar's OffloadPoliciesImpl JSON; pulsaradmin v0.19.0 has no
// namespace call for it, so plain HTTP) sets the namespace's thresholds,
// which then offload its topics; DELETE removes them again.
func TestOffloadNamespaceOffloadPolicies(t *testing.T) {
	gw := s3test.Start(t)
	opts := server.Options{Offload: offloadOptions(t, gw, "ns-offload-policies"), PolicyCheckInterval: 50 * time.Millisecond}
	opts.Offload.DeletionLag = 0 // the default, 4 h
	s := startServer(t, opts)
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	n := nsName(t, ns)
	url := s.WebURL() + "/admin/v2/namespaces/" + ns + "/offloadPolicies"
	expectHTTP(t, http.MethodGet, url, "", http.StatusNoContent)
	expectHTTP(t, http.MethodPost, url, `{"managedLedgerOffloadThresholdInBytes":-2}`, http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPost, url, `{"managedLedgerOffloadDriver":"filesystem"}`, http.StatusPreconditionFailed)
	expectHTTP(t, http.MethodPost, url, `[1]`, http.StatusBadRequest)
	expectHTTP(t, http.MethodGet, s.WebURL()+"/admin/v2/namespaces/public/no-such-ns/offloadPolicies", "", http.StatusNotFound)

	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/ns-offload-policies"
	msgs := produceN(t, client, topic, 100)
	body := `{"managedLedgerOffloadDriver":"aws-s3","managedLedgerOffloadBucket":"b","managedLedgerOffloadThresholdInBytes":0,"managedLedgerOffloadDeletionLagInMillis":0}`
	expectHTTP(t, http.MethodPost, url, body, http.StatusNoContent)
	var got meta.OffloadPolicies
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, url, "", http.StatusOK)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Driver != "aws-s3" || got.Bucket != "b" || got.ThresholdInBytes == nil || *got.ThresholdInBytes != 0 ||
		got.DeletionLagInMillis == nil || *got.DeletionLagInMillis != 0 || got.ThresholdInSeconds != nil {
		t.Fatalf("GET answered %+v", got)
	}
	if v, err := admin.Namespaces().GetOffloadThreshold(n); err != nil || v != 0 {
		t.Fatalf("offloadThreshold after the POST: %d %v, want 0", v, err)
	}
	adminEventually(t, "the namespace offloadPolicies' offload", func() bool {
		st, err := admin.Topics().OffloadStatus(topicName(t, topic))
		return err == nil && st.Status == utils.SUCCESS && st.FirstUnOffloadedMessage.EntryID == msgs[99].id.EntryID()+1
	})
	readFrom(t, client, topic, pulsar.EarliestMessageID(), false, msgs)
	if got := metricValue(t, s.WebURL(), "mb_offload_read_entries_total"); got < 100 {
		t.Fatalf("mb_offload_read_entries_total = %v: the deletion lag 0 was not applied", got)
	}

	expectHTTP(t, http.MethodDelete, s.WebURL()+"/admin/v2/namespaces/"+ns+"/removeOffloadPolicies", "", http.StatusNoContent)
	expectHTTP(t, http.MethodGet, url, "", http.StatusNoContent)
	if v, err := admin.Namespaces().GetOffloadThreshold(n); err != nil || v != -1 {
		t.Fatalf("offloadThreshold after the DELETE: %d %v, want -1", v, err)
	}
	expectHTTP(t, http.MethodGet, s.WebURL()+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", "", http.StatusNoContent)
}
