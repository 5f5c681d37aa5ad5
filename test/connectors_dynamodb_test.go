package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/testutil/ddbstreamstest"
	"github.com/messagebus/messagebus/server"
)

// The dynamodb source against ddbstreamstest, a fake DynamoDB Streams
// server (no emulator of it exists here; see that package).
func TestDynamoDBStreamsSource(t *testing.T) {
	f := ddbstreamstest.Start(t, "orders")
	// s0 (closed) split into s1; s2 is another root.
	f.AddShard("s0", "")
	f.AddShard("s1", "s0")
	f.AddShard("s2", "")
	id1 := map[string]any{"id": map[string]any{"N": "1"}}
	f.Put("s0", "INSERT", id1, nil, map[string]any{"id": map[string]any{"N": "1"}, "item": map[string]any{"S": "plum"}})
	f.Put("s0", "MODIFY", id1, map[string]any{"id": map[string]any{"N": "1"}, "item": map[string]any{"S": "plum"}},
		map[string]any{"id": map[string]any{"N": "1"}, "item": map[string]any{"S": "pear"}, "tags": map[string]any{"SS": []string{"a"}}})
	f.CloseShard("s0")
	f.Put("s1", "REMOVE", id1, map[string]any{"id": map[string]any{"N": "1"}, "item": map[string]any{"S": "pear"}}, nil)
	f.Put("s2", "INSERT", map[string]any{"id": map[string]any{"N": "2"}}, nil, map[string]any{"id": map[string]any{"N": "2"}, "ok": map[string]any{"BOOL": true}})

	t.Setenv("MB_TEST_AWS_KEY", "key")
	t.Setenv("MB_TEST_AWS_SECRET", "secret")
	s := startServer(t, server.Options{})
	c := newClient(t, s.BrokerURL())
	topic := uniqueTopic(t)
	cons := subscribeEarliest(t, c, topic)
	cfg := fmt.Sprintf(`{"archive":"builtin://dynamodb","topicName":%q,"configs":{"endpoint":%q,"streamArn":%q,
		"accessKeyId":"env:MB_TEST_AWS_KEY","secretAccessKey":"env:MB_TEST_AWS_SECRET","pollIntervalMs":50,"shardSyncIntervalMs":200}}`, topic, f.URL, f.StreamArn)
	if code, body := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/ddb", cfg); code != http.StatusNoContent {
		t.Fatalf("create source: %d %s", code, body)
	}
	type env struct {
		Before, After map[string]any
		Op            string
		Source        struct {
			Connector, Table, ShardID, SequenceNumber string
		}
	}
	var ops1 []string
	for _, m := range receiveN(t, cons, 4, 30*time.Second) {
		var e env
		if err := json.Unmarshal(m.Payload(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Source.Connector != "dynamodb" || e.Source.Table != "orders" || m.Properties()["op"] != e.Op || m.Properties()["dynamodb.sequenceNumber"] != e.Source.SequenceNumber {
			t.Fatalf("envelope %s properties %v", m.Payload(), m.Properties())
		}
		switch m.Key() {
		case `{"id":1}`:
			ops1 = append(ops1, e.Op)
			if e.Op == "u" && (e.Before["item"] != "plum" || e.After["item"] != "pear" || fmt.Sprint(e.After["tags"]) != "[a]") {
				t.Fatalf("update %s", m.Payload())
			}
			if e.Op == "d" && (e.After != nil || e.Before["item"] != "pear") {
				t.Fatalf("delete %s", m.Payload())
			}
		case `{"id":2}`:
			if e.Op != "c" || e.After["ok"] != true || e.Before != nil {
				t.Fatalf("insert %s", m.Payload())
			}
		default:
			t.Fatalf("key %q", m.Key())
		}
		cons.Ack(m)
	}
	// Parent before child: c and u from s0, then d from s1.
	if !slices.Equal(ops1, []string{"c", "u", "d"}) {
		t.Fatalf("ops of id 1: %v", ops1)
	}

	// After a restart the source resumes from its checkpoints: s0 ended,
	// s1 and s2 continue after their last records.
	waitFor(t, "checkpoints of the three shards", 10*time.Second, func() bool {
		code, _ := postJSON(t, http.MethodPost, s.WebURL()+"/admin/v3/sources/public/default/ddb/restart", "")
		if code != http.StatusNoContent {
			t.Fatalf("restart: %d", code)
		}
		seq := f.Put("s1", "INSERT", map[string]any{"id": map[string]any{"N": "3"}}, nil, map[string]any{"id": map[string]any{"N": "3"}})
		m := receiveN(t, cons, 1, 30*time.Second)[0]
		cons.Ack(m)
		// A duplicate from before the restart would come first.
		if m.Properties()["dynamodb.sequenceNumber"] != seq {
			t.Logf("redelivered before the checkpoint: %s", m.Payload())
			receiveN(t, cons, 1, 30*time.Second)
			return false
		}
		return true
	})
	its := f.Iterators()
	t.Logf("iterators: %v", its)
	for _, it := range its[3:] {
		if it == "s0 TRIM_HORIZON" || it == "s1 TRIM_HORIZON" || it == "s2 TRIM_HORIZON" {
			t.Fatalf("after the restart a shard was read from its start: %v", its)
		}
	}
}
