package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// maxProtocolVersion is the newest protocol version this broker speaks.
const maxProtocolVersion = 20

// conn is one client connection. One goroutine reads and handles commands in
// order; another writes whatever the handlers, the ledger callbacks and the
// dispatchers queued, so a slow socket never blocks a dispatcher.
type conn struct {
	b      *Broker
	nc     net.Conn
	log    *slog.Logger
	reader *wire.Reader

	connected       atomic.Bool
	protocolVersion int32
	// clientVersion is CONNECT's client_version, shown in stats.
	clientVersion string
	lastRead      atomic.Int64 // unix nanos of the last frame read

	amu  sync.Mutex // guards auth
	auth connAuth

	mu        sync.Mutex
	producers map[uint64]*Producer
	consumers map[uint64]*Consumer
	// creatingProducers and creatingConsumers hold the ids of PRODUCER and
	// SUBSCRIBE requests in progress (request.go); a CLOSE_PRODUCER or
	// CLOSE_CONSUMER meanwhile sets the value false, and the request then
	// undoes what it did instead of answering success.
	creatingProducers map[uint64]bool
	creatingConsumers map[uint64]bool

	// ctx ends when the connection closes; every request context derives
	// from it. requests counts the requests running on their own goroutine.
	ctx      context.Context
	cancel   context.CancelFunc
	requests sync.WaitGroup

	// inflight counts sends handed to the ledger and not yet answered;
	// shutdown waits for it to reach zero.
	inflight sync.WaitGroup

	wmu     sync.Mutex
	wbuf    []byte
	wclosed bool
	wsignal chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	writerWG  sync.WaitGroup
}

func newConn(b *Broker, nc net.Conn) *conn {
	c := &conn{
		b:         b,
		nc:        nc,
		log:       b.log.With("remote", nc.RemoteAddr().String()),
		producers: map[uint64]*Producer{},
		consumers: map[uint64]*Consumer{},
		wsignal:   make(chan struct{}, 1),
		closed:    make(chan struct{}),

		creatingProducers: map[uint64]bool{},
		creatingConsumers: map[uint64]bool{},
	}
	c.ctx, c.cancel = context.WithCancel(b.ctx)
	c.reader = wire.NewReader(nc, b.cfg.MaxMessageSize+wire.FrameOverhead)
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

func (c *conn) run() {
	defer c.b.removeConn(c)
	c.writerWG.Add(1)
	go c.writeLoop()
	go c.keepAlive()
	err := c.readLoop()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Info("connection closed", "err", err)
	}
	// Requests in progress end now: nobody is left to answer.
	c.cancel()
	c.requests.Wait()
	// Answer every send already handed to the ledger before tearing down.
	c.inflight.Wait()
	c.stopAuthTimer()
	c.release()
	c.close()
	c.writerWG.Wait()
}

func (c *conn) readLoop() error {
	for {
		f, err := c.reader.ReadFrame()
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				c.writeCommand(errorCommand(0, pb.ServerError_NotAllowedError, err.Error()))
			}
			return err
		}
		c.lastRead.Store(time.Now().UnixNano())
		if err := c.handle(f); err != nil {
			return err
		}
	}
}

// stopReading makes the read loop end; queued writes still go out.
func (c *conn) stopReading() {
	c.nc.SetReadDeadline(time.Now())
}

// handle dispatches one frame. A returned error closes the connection.
func (c *conn) handle(f *wire.Frame) error {
	if f.Type == pb.BaseCommand_SEND {
		return c.handleSend(f)
	}
	cmd, err := f.Command()
	if err != nil {
		return err
	}
	if !c.connected.Load() && f.Type != pb.BaseCommand_CONNECT {
		c.writeCommand(errorCommand(0, pb.ServerError_NotAllowedError, "expected CONNECT as first command"))
		return errors.New("command before CONNECT")
	}
	switch f.Type {
	case pb.BaseCommand_CONNECT:
		return c.handleConnect(cmd.GetConnect())
	case pb.BaseCommand_AUTH_RESPONSE:
		return c.handleAuthResponse(cmd.GetAuthResponse())
	case pb.BaseCommand_PING:
		c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
	case pb.BaseCommand_PONG:
	case pb.BaseCommand_LOOKUP:
		c.goRequest(func(ctx context.Context) { c.handleLookup(ctx, cmd.GetLookupTopic()) })
	case pb.BaseCommand_PARTITIONED_METADATA:
		c.goRequest(func(ctx context.Context) { c.handlePartitionedMetadata(ctx, cmd.GetPartitionMetadata()) })
	case pb.BaseCommand_PRODUCER:
		c.handleProducer(cmd.GetProducer())
	case pb.BaseCommand_CLOSE_PRODUCER:
		c.handleCloseProducer(cmd.GetCloseProducer())
	case pb.BaseCommand_SUBSCRIBE:
		c.handleSubscribe(cmd.GetSubscribe())
	case pb.BaseCommand_FLOW:
		c.handleFlow(cmd.GetFlow())
	case pb.BaseCommand_ACK:
		c.handleAck(cmd.GetAck())
	case pb.BaseCommand_REDELIVER_UNACKNOWLEDGED_MESSAGES:
		c.handleRedeliver(cmd.GetRedeliverUnacknowledgedMessages())
	case pb.BaseCommand_CLOSE_CONSUMER:
		c.handleCloseConsumer(cmd.GetCloseConsumer())
	case pb.BaseCommand_UNSUBSCRIBE:
		c.handleUnsubscribe(cmd.GetUnsubscribe())
	case pb.BaseCommand_SEEK:
		c.handleSeek(cmd.GetSeek())
	case pb.BaseCommand_GET_TOPICS_OF_NAMESPACE:
		c.goRequest(func(ctx context.Context) { c.handleGetTopicsOfNamespace(ctx, cmd.GetGetTopicsOfNamespace()) })
	case pb.BaseCommand_GET_LAST_MESSAGE_ID:
		c.handleGetLastMessageID(cmd.GetGetLastMessageId())
	case pb.BaseCommand_GET_SCHEMA:
		c.goRequest(func(ctx context.Context) { c.handleGetSchema(ctx, cmd.GetGetSchema()) })
	case pb.BaseCommand_GET_OR_CREATE_SCHEMA:
		c.goRequest(func(ctx context.Context) { c.handleGetOrCreateSchema(ctx, cmd.GetGetOrCreateSchema()) })
	default:
		c.handleUnsupported(cmd)
	}
	return nil
}

// handleUnsupported answers requests the broker does not implement with an
// ERROR carrying their request id, so the client fails that call instead of
// waiting for a timeout. Commands without a request id are logged and dropped.
func (c *conn) handleUnsupported(cmd *pb.BaseCommand) {
	if id, ok := requestID(cmd); ok {
		c.writeCommand(errorCommand(id, pb.ServerError_NotAllowedError, "command "+cmd.GetType().String()+" is not supported"))
		return
	}
	c.log.Warn("ignoring unsupported command", "type", cmd.GetType().String())
}

// keepAlive pings the client and drops the connection after two silent intervals.
func (c *conn) keepAlive() {
	iv := c.b.cfg.KeepAliveInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, c.lastRead.Load())) > 2*iv {
				c.log.Info("dropping dead connection", "silent_for", now.Sub(time.Unix(0, c.lastRead.Load())).String())
				c.close()
				return
			}
			if c.connected.Load() {
				c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})
			}
		}
	}
}

// release detaches the connection's producers and consumers from their topics.
func (c *conn) release() {
	c.mu.Lock()
	prods := c.producers
	cons := c.consumers
	c.producers = map[uint64]*Producer{}
	c.consumers = map[uint64]*Consumer{}
	c.mu.Unlock()
	for _, p := range prods {
		p.topic.removeProducer(p)
	}
	for _, cs := range cons {
		cs.sub.removeConsumer(cs)
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		close(c.closed)
		c.wmu.Lock()
		c.wclosed = true
		c.wmu.Unlock()
		select {
		case c.wsignal <- struct{}{}:
		default:
		}
	})
}

// write queues bytes built by fn for the writer goroutine. fn appends to the
// buffer it is given and returns it; it runs under the write lock, so frames
// never interleave.
func (c *conn) write(fn func([]byte) []byte) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	c.wbuf = fn(c.wbuf)
	c.wmu.Unlock()
	select {
	case c.wsignal <- struct{}{}:
	default:
	}
}

func (c *conn) writeCommand(cmd *pb.BaseCommand) {
	c.write(func(b []byte) []byte { return wire.AppendCommand(b, cmd) })
}

func (c *conn) writeLoop() {
	defer c.writerWG.Done()
	defer c.nc.Close()
	var spare []byte
	for {
		<-c.wsignal
		c.wmu.Lock()
		buf, closed := c.wbuf, c.wclosed
		c.wbuf = spare[:0]
		c.wmu.Unlock()
		if len(buf) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(2 * c.b.cfg.KeepAliveInterval))
			if _, err := c.nc.Write(buf); err != nil {
				c.log.Debug("write failed", "err", err)
				c.close()
				c.nc.Close()
				return
			}
			c.b.metrics.bytesOut.Add(float64(len(buf)))
		}
		if closed {
			return
		}
		// Keep a buffer of moderate size for reuse; drop huge ones.
		if cap(buf) <= 4<<20 {
			spare = buf
		} else {
			spare = nil
		}
	}
}
