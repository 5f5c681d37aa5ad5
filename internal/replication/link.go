package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// link is one connection to a remote broker carrying one producer: the
// replicator's sending half. Sends are pipelined; receipts come back on
// receipts in send order. Any failure ends the link (err then says why);
// a link is never reused after that.
type link struct {
	nc net.Conn
	// addr is the remote broker's host:port; tlsCfg its TLS (nil: none).
	addr     string
	tlsCfg   *tls.Config
	reader   *wire.Reader
	maxSize  int
	wmu      sync.Mutex
	receipts chan receipt
	// schemas carries GET_OR_CREATE_SCHEMA answers (one request at a time).
	schemas chan *pb.CommandGetOrCreateSchemaResponse
	reqID   uint64
	done    chan struct{}
	errOnce sync.Once
	err     error
}

// receipt is the remote's answer to one send, by sequence id.
type receipt struct {
	seq      uint64
	ledgerID int64 // -1 with entryID -1: a duplicate the remote already stored
	entryID  int64
}

const (
	clientVersion   = "messagebus-replicator"
	protocolVersion = 20
	producerID      = 1
)

// dialLink connects to the broker of the remote cluster that serves topic
// (lookup.go: any broker of ep, then the owner its LOOKUP names),
// authenticates and creates a producer there. ctx bounds the whole
// handshake.
func dialLink(ctx context.Context, ep Endpoint, topic, producerName string, window int) (*link, error) {
	l, err := connectOwner(ctx, ep, topic, window)
	if err != nil {
		return nil, err
	}
	if err := l.createProducer(topic, producerName); err != nil {
		l.nc.Close()
		return nil, err
	}
	l.nc.SetDeadline(time.Time{})
	go l.readLoop()
	return l, nil
}

// connect dials addr (over TLS with tlsCfg when set) and authenticates
// with ep's credentials: a link that has not started its read loop yet.
func connect(ctx context.Context, ep Endpoint, addr string, tlsCfg *tls.Config, window int) (*link, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	l := &link{nc: nc, addr: addr, tlsCfg: tlsCfg, reader: wire.NewReader(nc, 0), receipts: make(chan receipt, window+16),
		schemas: make(chan *pb.CommandGetOrCreateSchemaResponse, 1), reqID: 1, done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if err := l.authenticate(ep); err != nil {
		nc.Close()
		return nil, err
	}
	return l, nil
}

func (l *link) authenticate(ep Endpoint) error {
	connect := &pb.CommandConnect{
		ClientVersion:   proto.String(clientVersion),
		ProtocolVersion: proto.Int32(protocolVersion),
	}
	if ep.AuthMethod != "" {
		connect.AuthMethodName = proto.String(ep.AuthMethod)
		connect.AuthData = ep.AuthData
	}
	if err := l.write(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: connect}, nil); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	cmd, err := l.next()
	if err != nil {
		return fmt.Errorf("await CONNECTED: %w", err)
	}
	switch cmd.GetType() {
	case pb.BaseCommand_CONNECTED:
		l.maxSize = int(cmd.GetConnected().GetMaxMessageSize())
		if l.maxSize > 0 {
			l.reader.SetMaxFrameSize(l.maxSize + 10<<10)
		}
		return nil
	case pb.BaseCommand_ERROR:
		return fmt.Errorf("connection refused: %v: %s", cmd.GetError().GetError(), cmd.GetError().GetMessage())
	default:
		return fmt.Errorf("unexpected %v in answer to CONNECT", cmd.GetType())
	}
}

// createProducer creates the link's producer on topic.
func (l *link) createProducer(topic, producerName string) error {
	l.reqID++
	prod := &pb.CommandProducer{
		Topic:        proto.String(topic),
		ProducerId:   proto.Uint64(producerID),
		RequestId:    proto.Uint64(l.reqID),
		ProducerName: proto.String(producerName),
	}
	if err := l.write(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: prod}, nil); err != nil {
		return fmt.Errorf("send PRODUCER: %w", err)
	}
	for {
		cmd, err := l.next()
		if err != nil {
			return fmt.Errorf("await PRODUCER_SUCCESS: %w", err)
		}
		switch cmd.GetType() {
		case pb.BaseCommand_PRODUCER_SUCCESS:
			if cmd.GetProducerSuccess().GetProducerReady() {
				return nil
			}
		case pb.BaseCommand_ERROR:
			return fmt.Errorf("producer refused on %s by %s: %v: %s", topic, l.addr, cmd.GetError().GetError(), cmd.GetError().GetMessage())
		case pb.BaseCommand_PING:
			l.write(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}}, nil)
		}
	}
}

// next reads one frame and decodes its command.
func (l *link) next() (*pb.BaseCommand, error) {
	f, err := l.reader.ReadFrame()
	if err != nil {
		return nil, err
	}
	return f.Command()
}

func (l *link) write(cmd *pb.BaseCommand, hp []byte) error {
	var b []byte
	if hp == nil {
		b = wire.AppendCommand(nil, cmd)
	} else {
		b = wire.AppendPayloadCommand(nil, cmd, hp)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.nc.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := l.nc.Write(b)
	if err != nil {
		l.fail(fmt.Errorf("write: %w", err))
	}
	return err
}

// flush writes frames (one writev for many sends: a syscall per entry
// would bound unbatched replication). It consumes bufs' slice header, not
// the bytes.
func (l *link) flush(bufs net.Buffers) error {
	select {
	case <-l.done:
		return l.err
	default:
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.nc.SetWriteDeadline(time.Now().Add(sendTimeout))
	if _, err := bufs.WriteTo(l.nc); err != nil {
		l.fail(fmt.Errorf("write: %w", err))
		return err
	}
	return nil
}

// getOrCreateSchema registers s on the remote topic (as a producer with
// that schema would) and returns the remote's version of it. Only the
// replicator's goroutine calls it; the receipts channel holds a full
// window, so the read loop never waits on receipts while it does.
func (l *link) getOrCreateSchema(ctx context.Context, topic string, s *pb.Schema) ([]byte, error) {
	l.reqID++
	id := l.reqID
	for len(l.schemas) > 0 { // a late answer to an abandoned request
		<-l.schemas
	}
	if err := l.write(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA.Enum(), GetOrCreateSchema: &pb.CommandGetOrCreateSchema{
		RequestId: proto.Uint64(id), Topic: proto.String(topic), Schema: s}}, nil); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("register schema on the remote: %w", ctx.Err())
		case <-l.done:
			return nil, l.err
		case r := <-l.schemas:
			if r.GetRequestId() != id {
				continue
			}
			if r.ErrorCode != nil {
				return nil, fmt.Errorf("the remote refused the schema of the replicated messages: %v: %s", r.GetErrorCode(), r.GetErrorMessage())
			}
			return r.GetSchemaVersion(), nil
		}
	}
}

// readLoop turns the remote's frames into receipts until the link fails.
func (l *link) readLoop() {
	for {
		cmd, err := l.next()
		if err != nil {
			l.fail(fmt.Errorf("read: %w", err))
			return
		}
		switch cmd.GetType() {
		case pb.BaseCommand_SEND_RECEIPT:
			r := cmd.GetSendReceipt()
			rc := receipt{seq: r.GetSequenceId(), ledgerID: int64(r.GetMessageId().GetLedgerId()), entryID: int64(r.GetMessageId().GetEntryId())}
			select {
			case l.receipts <- rc:
			case <-l.done:
				return
			}
		case pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE:
			select {
			case l.schemas <- cmd.GetGetOrCreateSchemaResponse():
			default: // not awaited (a late answer): dropped
			}
		case pb.BaseCommand_SEND_ERROR:
			e := cmd.GetSendError()
			l.fail(fmt.Errorf("send refused by the remote: %v: %s", e.GetError(), e.GetMessage()))
			return
		case pb.BaseCommand_CLOSE_PRODUCER:
			l.fail(errors.New("the remote closed the producer"))
			return
		case pb.BaseCommand_ERROR:
			l.fail(fmt.Errorf("remote error: %v: %s", cmd.GetError().GetError(), cmd.GetError().GetMessage()))
			return
		case pb.BaseCommand_PING:
			l.write(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}}, nil)
		case pb.BaseCommand_AUTH_CHALLENGE:
			l.fail(errors.New("the remote asked for fresh credentials; reconnecting with the cluster's current ones"))
			return
		}
	}
}

// fail ends the link with err (the first error wins).
func (l *link) fail(err error) {
	l.errOnce.Do(func() {
		l.err = err
		close(l.done)
		l.nc.Close()
	})
}

func (l *link) close() { l.fail(errors.New("link closed")) }
