// Package supervise holds what the node's workers (functions, connectors)
// share: the loopback client they publish and consume with, and the loop
// that restarts a failed session with backoff.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// NewClient makes a worker's client of the node's own broker (brokerURL,
// loopback), authenticated with token when it is not empty.
func NewClient(brokerURL, token string, log *slog.Logger) (pulsar.Client, error) {
	opts := pulsar.ClientOptions{URL: brokerURL, OperationTimeout: 30 * time.Second,
		Logger: plog.NewLoggerWithSlog(log)}
	if token != "" {
		opts.Authentication = pulsar.NewAuthenticationToken(token)
	}
	c, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("worker client: %w", err)
	}
	return c, nil
}

// Backoff bounds the wait between sessions.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 30 * time.Second
	// stableAfter is how long a session must run for the backoff to reset.
	stableAfter = time.Minute
)

// Loop runs session until ctx ends. A session that returns while ctx is
// live failed: onFailure is told (with the wait before the next one) and a
// new session starts after the backoff, which doubles up to MaxBackoff
// and resets once a session ran for a minute.
func Loop(ctx context.Context, session func(context.Context) error, onFailure func(err error, backoff time.Duration)) {
	backoff := MinBackoff
	for {
		started := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("session ended without an error")
		}
		if time.Since(started) > stableAfter {
			backoff = MinBackoff
		}
		onFailure(err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}
