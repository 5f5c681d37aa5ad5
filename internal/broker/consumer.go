package broker

import (
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Consumer is one client consumer attached to a subscription.
type Consumer struct {
	// lastFlow is the unix millis of the consumer's last FLOW (stats).
	lastFlow atomic.Int64
	id       uint64
	name     string
	sub      *Subscription
	cn       *conn
	priority int32
	// keyShared is the consumer's Key_Shared policy (nil: AUTO_SPLIT).
	keyShared *pb.KeySharedMeta
	// permits is how many more messages the client asked for (FLOW); guarded
	// by sub.mu. It may go negative when a batch is larger than the permits left.
	permits int
	// unacked counts messages delivered and not yet acknowledged on a
	// Shared or Key_Shared subscription; at maxUnacked (0: no limit) the
	// consumer is blocked until it acks down to half (unacked.go). Guarded
	// by sub.mu.
	unacked        int
	maxUnacked     int
	unackedBlocked bool

	out    flowCounter // admin stats (rates.go)
	client clientInfo
	// local is set for an in-process consumer (cn is nil then).
	local *LocalConsumer
}

// clientInfo is what stats show of the client behind a producer or
// consumer, as Pulsar's PublisherStats and ConsumerStats do.
type clientInfo struct {
	version        string            // CONNECT's client_version
	metadata       map[string]string // PRODUCER's or SUBSCRIBE's metadata
	connectedSince time.Time
}

func newClientInfo(c *conn, kvs []*pb.KeyValue) clientInfo {
	ci := clientInfo{version: c.clientVersion, metadata: make(map[string]string, len(kvs)), connectedSince: time.Now()}
	for _, kv := range kvs {
		ci.metadata[kv.GetKey()] = kv.GetValue()
	}
	return ci
}

// writeMessage queues a MESSAGE frame.
func (c *conn) writeMessage(consumerID uint64, ledgerID, entryID int64, redeliveryCount uint32, ackSet []int64, hp []byte) {
	c.write(func(b []byte) []byte {
		return wire.AppendMessage(b, consumerID, ledgerID, entryID, redeliveryCount, ackSet, hp)
	})
}

// closeByBroker tells the client its consumer is closed (topic deleted,
// unloaded or seeked); the client subscribes again.
func (cs *Consumer) closeByBroker() {
	if cs.local != nil {
		cs.local.closeByBroker()
		return
	}
	c := cs.cn
	c.mu.Lock()
	if c.consumers[cs.id] == cs {
		delete(c.consumers, cs.id)
	}
	c.mu.Unlock()
	c.writeCommand(&pb.BaseCommand{
		Type:          pb.BaseCommand_CLOSE_CONSUMER.Enum(),
		CloseConsumer: &pb.CommandCloseConsumer{ConsumerId: proto.Uint64(cs.id), RequestId: proto.Uint64(0)},
	})
}
