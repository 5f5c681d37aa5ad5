package test

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kinesisconn "github.com/messagebus/messagebus/internal/connectors/kinesis"
	"github.com/messagebus/messagebus/internal/testutil/kinesalitetest"
)

// The kinesis source and sink against kinesalite 3.3.3 (npm).

// putKeyed puts records "key:n" for n in [from, to), keys k0..k4 in turn.
func putKeyed(t *testing.T, k *kinesalitetest.Server, stream string, from, to int) {
	t.Helper()
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for n := from; n < to; n++ {
		key := "k" + strconv.Itoa(n%5)
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(key + ":" + strconv.Itoa(n))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := k.Client.PutRecords(ctx, in)
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("put records: %v", err)
	}
}

// keyOrder checks values "key:n" against their keys and that the first
// occurrences of each key's values come in increasing n; it returns the
// distinct values.
func keyOrder(t *testing.T, keys, values []string) map[string]bool {
	t.Helper()
	seen, last := map[string]bool{}, map[string]int{}
	for i, v := range values {
		key, nstr, _ := strings.Cut(v, ":")
		if key != keys[i] {
			t.Fatalf("value %q has key %q", v, keys[i])
		}
		if seen[v] {
			continue
		}
		seen[v] = true
		n, _ := strconv.Atoi(nstr)
		if l, ok := last[key]; ok && n < l {
			t.Fatalf("key %s: %d after %d", key, n, l)
		}
		last[key] = n
	}
	return seen
}

func TestKinesisSourceAndSink(t *testing.T) {
	k := kinesalitetest.Start(t)
	k.CreateStream(t, "src", 2)
	k.CreateStream(t, "dst", 2)
	t.Setenv("MB_TEST_AWS_KEY", "key")
	t.Setenv("MB_TEST_AWS_SECRET", "secret")
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	topic := "persistent://public/default/from-kinesis"
	creds := fmt.Sprintf(`"endpoint":%q,"accessKeyId":"env:MB_TEST_AWS_KEY","secretAccessKey":"env:MB_TEST_AWS_SECRET"`, k.Endpoint)

	putKeyed(t, k, "src", 0, 20)
	// A KPL aggregated record of three user records.
	agg := kinesisconn.Aggregate([]string{"agg", "agg", "agg"}, [][]byte{[]byte("agg:0"), []byte("agg:1"), []byte("agg:2")})
	if _, err := k.Client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("src"), PartitionKey: aws.String("agg"), Data: agg}); err != nil {
		t.Fatal(err)
	}
	code, body := postJSON(t, http.MethodPost, p.webURL+"/admin/v3/sources/public/default/kin",
		fmt.Sprintf(`{"archive":"builtin://kinesis","topicName":%q,"configs":{%s,"streamName":"src","pollIntervalMs":50,"shardSyncIntervalMs":200}}`, topic, creds))
	if code != http.StatusNoContent {
		t.Fatalf("create source: %d %s", code, body)
	}
	c := newClient(t, p.brokerURL)
	cons := subscribeEarliest(t, c, topic)
	var keys, values []string
	take := func(msgs []pulsar.Message) {
		for _, m := range msgs {
			keys, values = append(keys, m.Key()), append(values, string(m.Payload()))
			if m.Properties()["kinesis.shardId"] == "" || m.Properties()["kinesis.sequenceNumber"] == "" {
				t.Fatalf("properties %v", m.Properties())
			}
			if m.Key() == "agg" && m.Properties()["kinesis.subSequenceNumber"] == "" {
				t.Fatalf("aggregated record without subSequenceNumber: %v", m.Properties())
			}
			cons.Ack(m)
		}
	}
	take(receiveN(t, cons, 23, 30*time.Second))
	if got := keyOrder(t, keys, values); len(got) != 23 {
		t.Fatalf("%d distinct of 23: %v", len(got), values)
	}

	// kill -9: records put meanwhile arrive after the restart, and what
	// was checkpointed is not read again. The checkpoint of a read follows
	// its receipts, so the consumer can see the records first: wait for
	// one checkpoint per shard.
	series := `mb_connector_checkpoints_total{connector="public/default/kin",instance="0",kind="source",type="kinesis"}`
	waitFor(t, "a checkpoint of each shard", 30*time.Second, func() bool { return metricValue(t, p.webURL, series) >= 2 })
	cons.Close()
	p.kill(t)
	putKeyed(t, k, "src", 20, 40)
	p = startProc(t, dir, p.brokerPort, p.httpPort)
	c = newClient(t, p.brokerURL)
	// A new subscription from the start sees the topic as it is: the 23
	// records, what the source read again after the kill, and the rest.
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "after-kill",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	keys, values = nil, nil
	deadline := time.Now().Add(30 * time.Second)
	for len(keyOrder(t, keys, values)) < 43 {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d values", len(values))
		}
		take(receiveN(t, cons, 1, 30*time.Second))
	}

	// Split shard 0: the records of each key keep their order across the
	// parent and its children.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mid := new(big.Int).Lsh(big.NewInt(1), 126) // half of shard 0's range [0, 2^127)
	if _, err := k.Client.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("src"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	k.WaitActive(t, "src")
	putKeyed(t, k, "src", 40, 60)
	for len(keyOrder(t, keys, values)) < 63 {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("after the split: %d values", len(values))
		}
		take(receiveN(t, cons, 1, 30*time.Second))
	}
	// The checkpoints were stored after the receipts: the source did not
	// read the first 23 records again (some of the last batch may repeat).
	t.Logf("source: 63 records in %d messages after kill -9 and a split", len(values))
	if len(values) >= 63+23 {
		t.Fatalf("%d messages: the source read everything again after the kill", len(values))
	}

	// The sink writes the topic to "dst": every record, keys kept, in
	// order per key.
	code, body = postJSON(t, http.MethodPost, p.webURL+"/admin/v3/sinks/public/default/to-kinesis",
		fmt.Sprintf(`{"archive":"builtin://kinesis","inputs":[%q],"configs":{%s,"streamName":"dst","batchSize":7}}`, topic, creds))
	if code != http.StatusNoContent {
		t.Fatalf("create sink: %d %s", code, body)
	}
	var recs []kinesalitetest.Record
	waitFor(t, "63 distinct records in the dst stream", 30*time.Second, func() bool {
		recs = k.ReadAll(t, "dst")
		var ks, vs []string
		for _, r := range recs {
			ks, vs = append(ks, r.PartitionKey), append(vs, r.Data)
		}
		return len(keyOrder(t, ks, vs)) == 63
	})
}
