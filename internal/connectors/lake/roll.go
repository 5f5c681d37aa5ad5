package lake

import (
	"context"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/connectors"
)

// batch is what the roll loop fills: an append-mode file or an upsert
// table.
type batch interface {
	// add takes m (its row is written at the next write).
	add(m pulsar.Message)
	// write stores what was added since the last write.
	write(ctx context.Context) error
}

// rolling is a batch with the messages it waits to acknowledge.
type rolling struct {
	b      batch
	msgs   []pulsar.Message
	bytes  int64
	opened time.Time // when its oldest pending message arrived
}

// rollLoop is both modes' Run loop: messages go to the batch named by
// keyOf (made by open when missing), and a batch is written once its
// pending payloads reach rollSizeBytes or its oldest pending message
// waited rollIntervalMs; its messages are acknowledged only after the
// write succeeded. keep says whether a written batch stays (an upsert
// table) or is dropped (a file). A failed write ends the session: the
// unacknowledged messages come again.
func (k *sink) rollLoop(ctx context.Context, env *connectors.SinkEnv, keep bool,
	keyOf func(context.Context, pulsar.Message) (string, error), open func(ctx context.Context, key string, m pulsar.Message) (batch, error)) error {
	roll := time.Duration(k.s.RollIntervalMs) * time.Millisecond
	tick := time.NewTicker(max(roll/4, 50*time.Millisecond))
	defer tick.Stop()
	batches := map[string]*rolling{}
	flush := func(key string, r *rolling) error {
		if err := r.b.write(ctx); err != nil {
			env.WriteFailed(err)
			return err
		}
		for _, m := range r.msgs {
			env.Ack(m)
		}
		r.msgs, r.bytes = nil, 0
		if !keep {
			delete(batches, key)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// Unwritten messages stay unacknowledged: they come again.
			return nil
		case m := <-env.Messages:
			key, err := keyOf(ctx, m)
			if err != nil {
				return err
			}
			r := batches[key]
			if r == nil {
				b, err := open(ctx, key, m)
				if err != nil {
					return err
				}
				r = &rolling{b: b}
				batches[key] = r
			}
			if len(r.msgs) == 0 {
				r.opened = time.Now()
			}
			r.b.add(m)
			r.msgs = append(r.msgs, m)
			r.bytes += int64(len(m.Payload()))
			if r.bytes >= k.s.RollSizeBytes {
				if err := flush(key, r); err != nil {
					return err
				}
			}
		case now := <-tick.C:
			for key, r := range batches {
				if len(r.msgs) > 0 && now.Sub(r.opened) >= roll {
					if err := flush(key, r); err != nil {
						return err
					}
				}
			}
		}
	}
}
