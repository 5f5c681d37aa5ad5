package broker

import (
	"sync"
	"sync/atomic"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Producer is one client producer attached to a topic.
type Producer struct {
	id    uint64
	name  string
	topic *Topic
	cn    *conn
	// requestID is the PRODUCER request's id, answered again when a
	// WaitForExclusive producer becomes ready; epoch the topic epoch held.
	requestID uint64
	epoch     uint64
	// schemaVersion is the version of the producer's schema
	// (schema.NoVersion: it brought none).
	schemaVersion int64

	// mu orders closing against sends: once closed is set no send is handed
	// to the ledger, and inflight counts those that were.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	in     flowCounter // admin stats (rates.go)
	client clientInfo

	// streamBroken is set on a replicator's producer (replicated.go) once
	// one of its sends was refused: the sends after it are refused too.
	streamBroken atomic.Bool
	// sentReplicated is set at its first replicated send.
	sentReplicated atomic.Bool
	// local is set for an in-process producer (cn is nil then).
	local *LocalProducer
}

// publishReplies is where the outcome of a producer's sends goes: its
// connection, or an in-process producer.
type publishReplies interface {
	sendReceipt(sf *wire.SendFields, ledgerID, entryID int64)
	sendError(sf wire.SendFields, code pb.ServerError, msg string)
	// appendStarted and appendDone bracket a send handed to the ledger.
	appendStarted()
	appendDone()
}

func (p *Producer) replies() publishReplies {
	if p.local != nil {
		return p.local
	}
	return p.cn
}

// begin registers a send; false when the producer is closed by the broker.
func (p *Producer) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

func (p *Producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// closeByBroker is the broker-initiated close (topic unloaded or deleted).
// As in Pulsar, CLOSE_PRODUCER goes out only after every send already handed
// to the ledger is answered: a receipt arriving after the client re-created
// the producer would be matched to the wrong message. Sends that arrive
// meanwhile are dropped unanswered; the client resends them on the new producer.
func (p *Producer) closeByBroker() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	if p.local != nil {
		p.local.closeByBroker()
		return
	}
	p.cn.writeCommand(&pb.BaseCommand{
		Type:          pb.BaseCommand_CLOSE_PRODUCER.Enum(),
		CloseProducer: &pb.CommandCloseProducer{ProducerId: proto.Uint64(p.id), RequestId: proto.Uint64(0)},
	})
}
