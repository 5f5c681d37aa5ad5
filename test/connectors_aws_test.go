package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/messagebus/messagebus/internal/testutil/goawstest"
	"github.com/messagebus/messagebus/server"
)

// The sqs source and the sqs and sns sinks against goaws v0.5.4.

func sqsClient(g *goawstest.Server) *sqs.Client {
	return sqs.New(sqs.Options{Region: g.Region, BaseEndpoint: aws.String(g.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
}

// drainQueue receives until n distinct bodies arrived. Its receives hide
// what they get for 2 s only: a receive whose response is lost (CI, under
// load: 10 of 25 missing, one batch) would hide its batch for the queue's
// 30 s otherwise.
func drainQueue(t *testing.T, c *sqs.Client, url string, n int) map[string]sqstypes.Message {
	t.Helper()
	got := map[string]sqstypes.Message{}
	deadline := time.Now().Add(40 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages", url, len(got), n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, VisibilityTimeout: 2, MessageAttributeNames: []string{"All"}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)] = m
			c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return got
}

func TestSQSSourceAndSNSSQSSinks(t *testing.T) {
	g := goawstest.Start(t, []string{"in", "out", "fromsns"}, map[string][]string{"events": {"fromsns"}})
	t.Setenv("MB_TEST_AWS_KEY", "key")
	t.Setenv("MB_TEST_AWS_SECRET", "secret")
	s := startServer(t, server.Options{})
	c := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	cons := subscribeEarliest(t, c, topic)
	creds := fmt.Sprintf(`"region":"us-east-1","endpoint":%q,"accessKeyId":"env:MB_TEST_AWS_KEY","secretAccessKey":"env:MB_TEST_AWS_SECRET"`, g.Endpoint)
	// A receive whose response is lost (an SDK retry after a broken
	// connection, seen once in CI under load) hides its messages for the
	// visibility timeout, as SQS does: 3 s, not the default 30, so the test
	// sees them again well within its wait. They may then arrive twice.
	src := fmt.Sprintf(`{"archive":"builtin://sqs","topicName":%q,"configs":{%s,"queueUrl":%q,"waitTimeSeconds":1,"visibilityTimeoutSeconds":3}}`, topic, creds, g.QueueURL("in"))
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/sqs-in", src); code != http.StatusNoContent {
		t.Fatalf("create source: %d %s", code, body)
	}
	q := sqsClient(g)
	const n = 25
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(g.QueueURL("in")), MessageBody: aws.String("m" + strconv.Itoa(i)),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{"color": {DataType: aws.String("String"), StringValue: aws.String("blue")}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logStatus(t, s.WebURL()+"/admin/v3/sources/public/default/sqs-in/status")
		}
	})
	// At least once: every body arrives, duplicates are allowed.
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(seen) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d bodies: %v", len(seen), n, err)
		}
		if m.Properties()["color"] != "blue" || m.Properties()["sqs.messageId"] == "" {
			t.Fatalf("properties %v", m.Properties())
		}
		seen[string(m.Payload())] = true
		cons.Ack(m)
	}
	for i := range n {
		if !seen["m"+strconv.Itoa(i)] {
			t.Fatalf("m%d missing from %v", i, seen)
		}
	}
	// Deleted after the receipts: the queue is empty, nothing in flight.
	waitFor(t, "the input queue to be empty", 10*time.Second, func() bool {
		out, err := q.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(g.QueueURL("in")),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		return err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	})
	// So the topic holds all it will: the sinks write each of its messages.
	var st struct {
		MsgInCounter int64 `json:"msgInCounter"`
	}
	getJSON(t, s.WebURL()+"/admin/v2/persistent/"+strings.TrimPrefix(topic, "persistent://")+"/stats", &st)
	if st.MsgInCounter < n {
		t.Fatalf("topic msgInCounter %d, want at least %d", st.MsgInCounter, n)
	}

	// One sink after the other: goaws loses messages when an SNS fan-out
	// and a batch send run at once (seen with v0.5.4).
	createSink := func(name, cfg string) {
		if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sinks/public/default/"+name, cfg); code != http.StatusNoContent {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
	}
	createSink("to-sqs", fmt.Sprintf(`{"archive":"builtin://sqs","inputs":[%q],"configs":{%s,"queueUrl":%q}}`, topic, creds, g.QueueURL("out")))
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"to-sqs", "to-sns"} {
				logStatus(t, s.WebURL()+"/admin/v3/sinks/public/default/"+name+"/status")
			}
		}
	})
	out := drainQueue(t, q, g.QueueURL("out"), n)
	if a := out["m3"].MessageAttributes["color"]; aws.ToString(a.StringValue) != "blue" {
		t.Fatalf("sqs sink attributes %v", out["m3"].MessageAttributes)
	}
	createSink("to-sns", fmt.Sprintf(`{"archive":"builtin://sns","inputs":[%q],"configs":{%s,"topicArn":%q}}`, topic, creds, g.TopicArn("events")))
	drainQueue(t, q, g.QueueURL("fromsns"), n)
	wrote := st.MsgInCounter
	waitFor(t, "both sinks to count every message written", 10*time.Second, func() bool {
		for _, name := range []string{"to-sqs", "to-sns"} {
			resp, err := http.Get(s.WebURL() + "/admin/v3/sinks/public/default/" + name + "/0/status")
			if err != nil {
				return false
			}
			var st struct{ NumWrittenToSink int64 }
			decodeResponse(resp, &st)
			if st.NumWrittenToSink != wrote {
				return false
			}
		}
		return true
	})
}

// logStatus logs a connector's status, for a failed test.
func logStatus(t *testing.T, u string) {
	resp, err := http.Get(u)
	if err != nil {
		t.Logf("GET %s: %v", u, err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("%s: %s", u, b)
}

func decodeResponse(resp *http.Response, v any) {
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
}
