package broker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/metafault"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
)

// rawClient speaks the binary protocol over TCP to a broker in the test.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *wire.Reader
}

func dialBroker(t *testing.T, b *Broker) *rawClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, r: wire.NewReader(nc, 10<<20)}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("test"), ProtocolVersion: proto.Int32(maxProtocolVersion)}})
	if f := c.next(); f.Type != pb.BaseCommand_CONNECTED {
		t.Fatalf("answer to CONNECT: %v", f.Type)
	}
	return c
}

func (c *rawClient) send(cmd *pb.BaseCommand) {
	c.t.Helper()
	if _, err := c.nc.Write(wire.AppendCommand(nil, cmd)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame that is not a PING.
func (c *rawClient) next() *wire.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatal(err)
		}
		if f.Type != pb.BaseCommand_PING {
			return f
		}
	}
}

func lookupCmd(reqID uint64, topic string) *pb.BaseCommand {
	return &pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA.Enum(), PartitionMetadata: &pb.CommandPartitionedTopicMetadata{
		Topic: proto.String(topic), RequestId: proto.Uint64(reqID)}}
}

// TestSlowNamespaceDoesNotBlockConnection: a request stuck on one
// namespace's metadata does not hold up the requests that follow it on the
// same connection (another namespace's lookup, a producer and its sends).
func TestSlowNamespaceDoesNotBlockConnection(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	ctx := context.Background()
	slowNS := naming.Namespace{Tenant: "public", Name: "slow"}
	if err := fb.raw.CreateNamespace(ctx, slowNS, meta.Policies{}); err != nil {
		t.Fatal(err)
	}
	defer fb.faults.Inject(metafault.Rule{Match: metafault.NamespacePolicies(slowNS), Delay: 5 * time.Second})()
	c := dialBroker(t, fb.b)
	start := time.Now()
	c.send(lookupCmd(1, "persistent://public/slow/t"))
	c.send(lookupCmd(2, "persistent://public/default/t"))
	if f := c.next(); f.Type != pb.BaseCommand_PARTITIONED_METADATA_RESPONSE {
		t.Fatalf("first answer: %v", f.Type)
	} else if cmd, _ := f.Command(); cmd.GetPartitionMetadataResponse().GetRequestId() != 2 {
		t.Fatalf("first answer is for request %d, want 2 (the fast namespace)", cmd.GetPartitionMetadataResponse().GetRequestId())
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String("persistent://public/default/t"), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(3)}})
	if f := c.next(); f.Type != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("answer to PRODUCER: %v", f.Type)
	}
	hp := wire.BuildPayload(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1)}, []byte("x"))
	send := &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(0)}}
	if _, err := c.nc.Write(wire.AppendPayloadCommand(nil, send, hp)); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Type != pb.BaseCommand_SEND_RECEIPT {
		t.Fatalf("answer to SEND: %v", f.Type)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("requests in public/default took %v behind a 5s metadata read of public/slow", d)
	}
	// The slow lookup is answered in the end.
	if f := c.next(); f.Type != pb.BaseCommand_PARTITIONED_METADATA_RESPONSE {
		t.Fatalf("answer to the slow lookup: %v", f.Type)
	}
}

// TestRequestContextEndsWithConnection: a request waiting on metadata ends
// as soon as its connection closes, and the connection is released without
// waiting for the metadata store.
func TestRequestContextEndsWithConnection(t *testing.T) {
	fb := newFaultBroker(t, Config{})
	ctx := context.Background()
	slowNS := naming.Namespace{Tenant: "public", Name: "stuck"}
	if err := fb.raw.CreateNamespace(ctx, slowNS, meta.Policies{}); err != nil {
		t.Fatal(err)
	}
	defer fb.faults.Inject(metafault.Rule{Match: metafault.Namespace(slowNS), Delay: time.Minute})()
	c := dialBroker(t, fb.b)
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String("persistent://public/stuck/t"), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(1)}})
	waitFor(t, func() bool { return fb.faults.CallsMatching(metafault.OpGet, metafault.Namespace(slowNS)) > 0 })
	fb.b.mu.Lock()
	var cn *conn
	for x := range fb.b.conns {
		cn = x
	}
	fb.b.mu.Unlock()
	reqCtx, cancel := cn.requestCtx()
	defer cancel()
	closedAt := time.Now()
	c.nc.Close()
	select {
	case <-reqCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("request context still live 5s after the connection closed")
	}
	waitFor(t, func() bool {
		fb.b.mu.Lock()
		defer fb.b.mu.Unlock()
		return len(fb.b.conns) == 0
	})
	if d := time.Since(closedAt); d > 5*time.Second {
		t.Fatalf("connection released %v after closing, with a request stuck on metadata", d)
	}
}

// TestRequestTimesOutWithServiceNotReady: past the operation timeout the
// client gets a retriable error, not silence.
func TestRequestTimesOutWithServiceNotReady(t *testing.T) {
	fb := newFaultBroker(t, Config{OperationTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	slowNS := naming.Namespace{Tenant: "public", Name: "slow"}
	if err := fb.raw.CreateNamespace(ctx, slowNS, meta.Policies{}); err != nil {
		t.Fatal(err)
	}
	defer fb.faults.Inject(metafault.Rule{Match: metafault.Namespace(slowNS), Delay: time.Minute})()
	c := dialBroker(t, fb.b)
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String("persistent://public/slow/t"), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(7)}})
	f := c.next()
	cmd, _ := f.Command()
	if f.Type != pb.BaseCommand_ERROR || cmd.GetError().GetError() != pb.ServerError_ServiceNotReady || cmd.GetError().GetRequestId() != 7 {
		t.Fatalf("answer to a PRODUCER past the operation timeout: %v %v", f.Type, cmd.GetError())
	}
	if n := testutil.ToFloat64(fb.b.metrics.requestTimeouts.WithLabelValues("producer")); n != 1 {
		t.Fatalf("mb_request_timeouts_total{command=producer} = %v, want 1", n)
	}
	c.send(lookupCmd(8, "persistent://public/slow/t"))
	f = c.next()
	cmd, _ = f.Command()
	if r := cmd.GetPartitionMetadataResponse(); r.GetResponse() != pb.CommandPartitionedTopicMetadataResponse_Failed || r.GetError() != pb.ServerError_MetadataError {
		t.Fatalf("answer to a lookup past the operation timeout: %v", r)
	}
}
