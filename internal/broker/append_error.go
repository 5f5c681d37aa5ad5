package broker

import (
	"errors"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// appendErrLogInterval is the least time between two "append failed" lines.
const appendErrLogInterval = 10 * time.Second

// appendFailed answers a send the ledger did not store with SEND_ERROR
// PersistenceError. The reason is the store's own for a full disk ("disk
// full: ..."), which the client logs; it resends once it reconnects.
func (b *Broker) appendFailed(t *Topic, c publishReplies, sf *wire.SendFields, err error) {
	b.metrics.appendErrors.Inc()
	if ok, suppressed := b.appendErrLog.Allow(); ok {
		b.log.Error("append failed", "topic", t.fullName, "err", err, "suppressed", suppressed)
	}
	if o := b.cfg.Ownership; o != nil && !o.Owns(t.name.Namespace.String(), t.fullName) {
		// Fenced (another broker took the bundle): stop serving the topic so
		// its clients look it up again.
		go b.UnloadTopic(t.fullName)
	}
	reason := "message not stored: " + err.Error()
	if errors.Is(err, ledger.ErrDiskFull) {
		reason = err.Error()
	}
	c.sendError(*sf, pb.ServerError_PersistenceError, reason)
}
