// Package ddbstreamstest is a minimal in-test DynamoDB Streams server: no
// DynamoDB Streams emulator runs here (dynalite has no streams, and the
// project takes no Docker images), so it speaks the documented API's real
// wire protocol (JSON 1.0, X-Amz-Target DynamoDBStreams_20120810.*) for
// DescribeStream, GetShardIterator, GetRecords and ListStreams over shards
// and records a test defines. aws-sdk-go-v2's service/dynamodbstreams is
// its client. It is a fake: it checks no signatures, has no retention and
// no paging.
package ddbstreamstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running fake with one stream.
type Server struct {
	URL, StreamArn string

	mu     sync.Mutex
	shards []*shard
	seq    int
	// iterators logs GetShardIterator calls as "shard TYPE [sequence]".
	iterators []string
}

type shard struct {
	id, parent string
	closed     bool
	records    []map[string]any
}

// Start runs a fake serving the stream of table until the test ends.
func Start(t testing.TB, table string) *Server {
	s := &Server{StreamArn: "arn:aws:dynamodb:us-east-1:123456789012:table/" + table + "/stream/2026-12-07T00:00:00.000"}
	h := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(h.Close)
	s.URL = h.URL
	return s
}

// AddShard adds an open shard (parent "" for a root).
func (s *Server) AddShard(id, parent string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards = append(s.shards, &shard{id: id, parent: parent})
}

// CloseShard closes a shard: readers get no next iterator after its records.
func (s *Server) CloseShard(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.find(id).closed = true
}

func (s *Server) find(id string) *shard {
	for _, sh := range s.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

// Put appends a change to a shard; keys and images are in DynamoDB's
// attribute-value JSON ({"id":{"N":"1"}}), nil when absent. It returns the
// record's sequence number.
func (s *Server) Put(shardID, eventName string, keys, oldImage, newImage map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq += 100
	seq := fmt.Sprintf("%021d", s.seq)
	d := map[string]any{"ApproximateCreationDateTime": float64(time.Now().Unix()), "Keys": keys, "SequenceNumber": seq,
		"SizeBytes": 64, "StreamViewType": "NEW_AND_OLD_IMAGES"}
	if oldImage != nil {
		d["OldImage"] = oldImage
	}
	if newImage != nil {
		d["NewImage"] = newImage
	}
	sh := s.find(shardID)
	sh.records = append(sh.records, map[string]any{"eventID": "ev" + strconv.Itoa(s.seq), "eventName": eventName, "eventVersion": "1.1",
		"eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": d})
	return seq
}

// Iterators returns the GetShardIterator calls so far.
func (s *Server) Iterators() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.iterators...)
}

func fail(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + typ, "message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "DynamoDBStreams_20120810.")
	if r.Method != http.MethodPost || !ok {
		fail(w, 400, "UnknownOperationException", "unknown operation")
		return
	}
	var in struct {
		StreamArn, ShardId, ShardIteratorType, SequenceNumber, ShardIterator string
		Limit                                                                int
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, 400, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out any
	switch op {
	case "ListStreams":
		out = map[string]any{"Streams": []any{map[string]any{"StreamArn": s.StreamArn, "TableName": tableOf(s.StreamArn), "StreamLabel": "2026-12-07T00:00:00.000"}}}
	case "DescribeStream":
		if in.StreamArn != s.StreamArn {
			fail(w, 400, "ResourceNotFoundException", "no stream "+in.StreamArn)
			return
		}
		var shards []any
		for _, sh := range s.shards {
			d := map[string]any{"ShardId": sh.id, "SequenceNumberRange": map[string]any{"StartingSequenceNumber": "0"}}
			if sh.parent != "" {
				d["ParentShardId"] = sh.parent
			}
			shards = append(shards, d)
		}
		out = map[string]any{"StreamDescription": map[string]any{"StreamArn": s.StreamArn, "StreamStatus": "ENABLED",
			"StreamViewType": "NEW_AND_OLD_IMAGES", "TableName": tableOf(s.StreamArn), "Shards": shards}}
	case "GetShardIterator":
		sh := s.find(in.ShardId)
		if sh == nil || in.StreamArn != s.StreamArn {
			fail(w, 400, "ResourceNotFoundException", "no shard "+in.ShardId)
			return
		}
		s.iterators = append(s.iterators, strings.TrimSpace(in.ShardId+" "+in.ShardIteratorType+" "+in.SequenceNumber))
		pos := 0
		switch in.ShardIteratorType {
		case "TRIM_HORIZON":
		case "LATEST":
			pos = len(sh.records)
		case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
			pos = -1
			for i, rec := range sh.records {
				if rec["dynamodb"].(map[string]any)["SequenceNumber"] == in.SequenceNumber {
					pos = i
					if in.ShardIteratorType == "AFTER_SEQUENCE_NUMBER" {
						pos++
					}
				}
			}
			if pos < 0 {
				fail(w, 400, "TrimmedDataAccessException", "no record "+in.SequenceNumber)
				return
			}
		default:
			fail(w, 400, "ValidationException", "ShardIteratorType "+in.ShardIteratorType)
			return
		}
		out = map[string]any{"ShardIterator": fmt.Sprintf("%s|%d", sh.id, pos)}
	case "GetRecords":
		id, p, _ := strings.Cut(in.ShardIterator, "|")
		pos, err := strconv.Atoi(p)
		sh := s.find(id)
		if sh == nil || err != nil || pos > len(sh.records) {
			fail(w, 400, "ValidationException", "bad iterator")
			return
		}
		end := len(sh.records)
		if in.Limit > 0 && pos+in.Limit < end {
			end = pos + in.Limit
		}
		res := map[string]any{"Records": append([]map[string]any{}, sh.records[pos:end]...)}
		if !sh.closed || end < len(sh.records) {
			res["NextShardIterator"] = fmt.Sprintf("%s|%d", sh.id, end)
		}
		out = res
	default:
		fail(w, 400, "UnknownOperationException", op)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

func tableOf(arn string) string {
	_, rest, _ := strings.Cut(arn, ":table/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}
