// Package kinesalitetest runs kinesalite (an implementation of the Amazon
// Kinesis Data Streams API on LevelDB, npm kinesalite pinned at 3.3.3 in
// package.json) for tests, as a node process on 127.0.0.1.
//
// Setup, once per checkout (`make testdeps` does it):
//
//	npm ci --prefix internal/testutil/kinesalitetest
//
// Tests fail, never skip, when node or node_modules are missing.
package kinesalitetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Server is a running kinesalite.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	Region   string
	Client   *kinesis.Client
}

// Start runs kinesalite until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("kinesalitetest: node not found on PATH (install Node.js 20+, then run `make testdeps`)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite", "package.json")); err != nil {
		t.Fatalf("kinesalitetest: npm packages missing in %s; run `make testdeps` or `npm ci --prefix internal/testutil/kinesalitetest`", dir)
	}
	cmd := exec.Command(node, "kinesalite.js")
	cmd.Dir = dir
	var out strings.Builder
	var outMu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(b) })
	// kinesalite.js exits when its stdin closes: it never outlives the test binary.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("kinesalitetest: start node: %v", err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	var hello struct{ Endpoint string }
	select {
	case l, ok := <-lines:
		if !ok || json.Unmarshal([]byte(l), &hello) != nil || hello.Endpoint == "" {
			outMu.Lock()
			defer outMu.Unlock()
			t.Fatalf("kinesalitetest: no endpoint announced (%q): %s", l, out.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("kinesalitetest: kinesalite did not start within 60 s")
	}
	s := &Server{Endpoint: hello.Endpoint, Region: "us-east-1"}
	s.Client = kinesis.New(kinesis.Options{Region: s.Region, BaseEndpoint: aws.String(s.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// CreateStream creates a stream of shards shards and waits until it is active.
func (s *Server) CreateStream(t testing.TB, name string, shards int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	s.WaitActive(t, name)
}

// WaitActive waits until the stream is ACTIVE (after a create, split or merge).
func (s *Server) WaitActive(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := kinesis.NewStreamExistsWaiter(s.Client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 20 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("stream %s not active: %v", name, err)
	}
	for {
		out, err := s.Client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s not active", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Record is a record read back from a stream.
type Record struct {
	Shard, PartitionKey, Data, SequenceNumber string
}

// ReadAll reads every record of every shard (closed ones too), shard by shard.
func (s *Server) ReadAll(t testing.TB, name string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shards, err := s.Client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, sh := range shards.Shards {
		it, err := s.Client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			recs, err := s.Client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs.Records {
				out = append(out, Record{Shard: aws.ToString(sh.ShardId), PartitionKey: aws.ToString(r.PartitionKey),
					Data: string(r.Data), SequenceNumber: aws.ToString(r.SequenceNumber)})
			}
			if len(recs.Records) == 0 {
				break // an open shard's end for now
			}
			iter = recs.NextShardIterator
		}
	}
	return out
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("kinesalite at %s", s.Endpoint) }
