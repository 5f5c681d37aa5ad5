package test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/messagebus/messagebus/internal/testutil/kinesalitetest"
	"github.com/messagebus/messagebus/server"
)

// BenchmarkKinesisSource measures the kinesis source's records/s reading
// a backlog of 20,000 records of 100 bytes in a 2-shard stream of
// kinesalite 3.3.3 (npm) to a topic, from the source's creation to the
// consumer's last receive; and, as its bound, kinesalite's own read rate
// (GetRecords of 10,000 over both shards, no broker). Run with
//
//	go test -run XXX -bench KinesisSource -benchtime 1x ./test/
func BenchmarkKinesisSource(b *testing.B) {
	const records = 20_000
	k := kinesalitetest.Start(b)
	b.Setenv("MB_TEST_AWS_KEY", "key")
	b.Setenv("MB_TEST_AWS_SECRET", "secret")
	s, err := server.New(server.Options{DataDir: b.TempDir(), BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdvertisedAddress: "127.0.0.1", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	defer s.Shutdown(context.Background())
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), Logger: nopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := []byte(strings.Repeat("k", 100))
	for i := 0; i < b.N; i++ {
		stream := "bench" + strconv.Itoa(i)
		k.CreateStream(b, stream, 2)
		start := time.Now()
		for n := 0; n < records; n += 500 {
			in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
			for j := n; j < n+500; j++ {
				in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String("k" + strconv.Itoa(j%64)), Data: data})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := k.Client.PutRecords(ctx, in)
			cancel()
			if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
				b.Fatalf("put records: %v", err)
			}
		}
		b.ReportMetric(records/time.Since(start).Seconds(), "put-records/s")

		start = time.Now()
		if got := readStream(b, k, stream); got != records {
			b.Fatalf("kinesalite read %d of %d", got, records)
		}
		b.ReportMetric(records/time.Since(start).Seconds(), "kinesalite-read-records/s")

		topic := "persistent://public/default/kinesis-bench-" + stream
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bench", ReceiverQueueSize: 10000,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			b.Fatal(err)
		}
		cfg := fmt.Sprintf(`{"archive":"builtin://kinesis","topicName":%q,"configs":{"endpoint":%q,"accessKeyId":"env:MB_TEST_AWS_KEY",`+
			`"secretAccessKey":"env:MB_TEST_AWS_SECRET","streamName":%q,"initialPosition":"TRIM_HORIZON","maxRecords":10000,"pollIntervalMs":50}}`,
			topic, k.Endpoint, stream)
		start = time.Now()
		req, _ := http.NewRequest(http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/kin"+strconv.Itoa(i), strings.NewReader(cfg))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			b.Fatalf("create: %v %v", err, resp)
		}
		for got := 0; got < records; got++ {
			rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				b.Fatalf("after %d of %d: %v", got, records, err)
			}
			if got%1000 == 999 || got == records-1 {
				cons.AckCumulative(m)
			}
		}
		b.ReportMetric(records/time.Since(start).Seconds(), "records/s")
		cons.Close()
	}
}

// readStream reads every shard of a stream from its start until a read
// returns nothing, and returns the number of records.
func readStream(b *testing.B, k *kinesalitetest.Server, stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := k.Client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, sh := range shards.Shards {
		it, err := k.Client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			b.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := k.Client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				b.Fatal(err)
			}
			if len(out.Records) == 0 {
				break
			}
			n += len(out.Records)
			iter = out.NextShardIterator
		}
	}
	return n
}
