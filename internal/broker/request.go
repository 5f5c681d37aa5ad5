package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Requests and their contexts.
//
// Every request handler works under a context from requestCtx: it ends when
// the connection closes or when Config.OperationTimeout passes, whichever
// comes first. A request that runs out of time is answered, never left
// unanswered: PRODUCER and SUBSCRIBE with ServiceNotReady (the client
// retries), lookups with MetadataError. Lookups never get ServiceNotReady
// for a metadata problem: on a lookup answer it makes the Go and Java
// clients close the whole connection, and with it every producer and
// consumer on it, which would spread one namespace's trouble to others.
//
// A metadata read that fails is MetadataError (retriable for the clients).
//
// Requests that read metadata or load topics (LOOKUP, PARTITIONED_METADATA,
// PRODUCER, SUBSCRIBE, GET_TOPICS_OF_NAMESPACE) run on their own goroutine
// (goRequest), so a slow namespace delays only its own requests, not the
// sends and acks that follow on the same connection. The connection waits
// for them before it releases its producers and consumers.

// requestCtx returns the context of one request.
func (c *conn) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.b.cfg.OperationTimeout)
}

// goRequest runs fn on its own goroutine with a request context.
func (c *conn) goRequest(fn func(ctx context.Context)) {
	c.requests.Add(1)
	go func() {
		defer c.requests.Done()
		ctx, cancel := c.requestCtx()
		defer cancel()
		fn(ctx)
	}()
}

// requestError turns err into what the client is told once ctx ended, or
// once a deadline inside the request passed (a shared read's own deadline
// may pass a moment before the request's): a retriable ServiceNotReady
// naming the timeout.
func requestError(ctx context.Context, err error) error {
	switch {
	case timedOut(ctx, err):
		return wrapError(pb.ServerError_ServiceNotReady, fmt.Errorf("operation timed out: %w", err))
	case ctx.Err() != nil:
		return wrapError(pb.ServerError_ServiceNotReady, fmt.Errorf("request cancelled: %w", err))
	}
	return err
}

func timedOut(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

// countTimeout records a request that ran out of time.
func (c *conn) countTimeout(ctx context.Context, command string, err error) {
	if timedOut(ctx, err) {
		c.b.metrics.requestTimeouts.WithLabelValues(command).Inc()
	}
}

// lookupError is requestError for lookup answers: MetadataError instead of
// ServiceNotReady (see above).
func lookupError(ctx context.Context, err error) error {
	err = requestError(ctx, err)
	if serverError(err) == pb.ServerError_ServiceNotReady {
		return wrapError(pb.ServerError_MetadataError, err)
	}
	return err
}

// metadataError counts a failed metadata read and makes err retriable for
// the client (MetadataError): the metadata store may be back at the next
// attempt. A missing record is not a failure and is returned as it is.
func (b *Broker) metadataError(op string, err error) error {
	if err == nil || errors.Is(err, meta.ErrNotFound) {
		return err
	}
	var be *brokerError
	if errors.As(err, &be) {
		return err
	}
	if !errors.Is(err, context.Canceled) { // the requester left: not the store's fault
		b.metrics.metadataErrors.WithLabelValues(op).Inc()
	}
	return wrapError(pb.ServerError_MetadataError, fmt.Errorf("metadata unavailable: %w", err))
}
